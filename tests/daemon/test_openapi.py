#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""doc/openapi.yaml is the REST API's contract: this checks that it is a
valid OpenAPI 3.0 document (against the OpenAPI Initiative's published
JSON Schema for 3.0, kept in tests/data/openapi-3.0-schema.json), and that
what a real smpgwd answers matches it: every GET endpoint, the errors, the
POST replies and the Server-Sent Events' data, each against the response
schema the document gives for that path, method and status.

The document's Schema Objects are OpenAPI 3.0's dialect of JSON Schema;
they are translated to JSON Schema draft 4 as OpenAPI 3.0.3 defines them:
`nullable: true` adds "null" to `type` (and, as 3.0.3 clarifies, leaves
`enum` alone: a nullable enum lists null itself), `$ref`s to
components/schemas become local definitions, and the annotations JSON
Schema does not know (example, nullable) are dropped.  Needs python3-yaml
and python3-jsonschema (tools/deps.sh); skips (77) without them."""

import copy
import json
import os
import re
import sys
import time
import unittest
import urllib.parse

try:
    import jsonschema
    import yaml
except ImportError as e:
    sys.stderr.write("SKIP: %s (python3-jsonschema and python3-yaml are needed)\n" % e)
    sys.exit(77)

sys.path.insert(0, os.path.dirname(__file__))
from daemonharness import SRCDIR, Daemon, Sim  # noqa: E402
from test_rest import SSEClient, add_device, upload, wait_jobs_finished, wait_online  # noqa: E402
import mcuimg  # noqa: E402

TOKEN = "openapi-token"
DOCUMENT = os.path.join(SRCDIR, "doc", "openapi.yaml")
OAS30_SCHEMA = os.path.join(SRCDIR, "tests", "data", "openapi-3.0-schema.json")
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

# Keywords of an OpenAPI 3.0 Schema Object that are no JSON Schema
# assertions.
OPENAPI_ONLY = ("nullable", "example", "discriminator", "xml", "externalDocs", "deprecated")


def load_document():
    with open(DOCUMENT) as f:
        return yaml.safe_load(f)


def resolve(doc, node):
    """Follows a $ref (a JSON pointer into the document) until a node has none."""
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/") or ref in seen:
            raise AssertionError("unresolvable $ref %r" % ref)
        seen.add(ref)
        node = doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                raise AssertionError("$ref %r does not resolve" % ref)
            node = node[part]
    return node


def to_json_schema(node):
    """An OpenAPI 3.0 Schema Object as JSON Schema draft 4."""
    if isinstance(node, list):
        return [to_json_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        prefix = "#/components/schemas/"
        if not ref.startswith(prefix):
            raise AssertionError("a schema $ref outside components/schemas: %r" % ref)
        return {"$ref": "#/definitions/" + ref[len(prefix):]}
    out = {}
    for key, value in node.items():
        if key in OPENAPI_ONLY:
            continue
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: to_json_schema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[key] = to_json_schema(value)
        else:
            out[key] = copy.deepcopy(value)
    if node.get("nullable") is True:
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = types + ["null"]
        elif "$ref" not in out:
            out["type"] = ["string", "number", "integer", "boolean", "object", "array", "null"]
    return out


def format_checker():
    checker = jsonschema.FormatChecker(formats=())

    @checker.checks("date-time")
    def is_rfc3339_ms(value):
        # doc/openapi.yaml: "RFC 3339 UTC strings with milliseconds".
        return not isinstance(value, str) or RFC3339_MS.match(value) is not None

    return checker


def describe(error):
    """The deepest failure under a oneOf (Schema or Reference, at every
    level of the meta-schema): that is where the document is wrong."""
    def leaves(e):
        if not e.context:
            yield e
        for c in e.context:
            yield from leaves(c)
    deepest = max(leaves(error), key=lambda e: len(e.absolute_path))
    return "%s: %s" % ("/".join(str(p) for p in deepest.absolute_path), deepest.message[:400])


class Document(unittest.TestCase):
    def test_valid_openapi_3_0(self):
        with open(OAS30_SCHEMA) as f:
            meta = json.load(f)
        doc = load_document()
        validator = jsonschema.Draft4Validator(meta)
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        self.assertEqual([describe(e) for e in errors], [], "doc/openapi.yaml is not valid OpenAPI 3.0")

    def test_every_ref_resolves(self):
        doc = load_document()

        def walk(node):
            if isinstance(node, dict):
                if "$ref" in node:
                    resolve(doc, node)
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)
        walk(doc)

    def test_schemas_are_json_schema(self):
        doc = load_document()
        definitions = {k: to_json_schema(v) for k, v in doc["components"]["schemas"].items()}
        for name, schema in definitions.items():
            jsonschema.Draft4Validator.check_schema(schema)
            self.assertNotIn("nullable", json.dumps(schema), name)


class Live(unittest.TestCase):
    """A real smpgwd with a device that answers (smpsim), one that does
    not, an image and a finished push."""

    @classmethod
    def setUpClass(cls):
        cls.doc = load_document()
        cls.definitions = {k: to_json_schema(v) for k, v in cls.doc["components"]["schemas"].items()}
        cls.checked = set()
        cls.sim = Sim(count=1)
        cls.d = Daemon(config="[discovery]\nenabled=no\n", tokens=[TOKEN])
        d = cls.d
        cls.conn = "udp:127.0.0.1:%d" % cls.sim.port
        cls.dev = add_device(d, cls.conn)["id"]
        # Nothing answers there: never probed, so its SMP version is unknown.
        cls.silent = add_device(d, "udp:127.0.0.1:9")["id"]
        wait_online(d, [cls.dev])
        imgdata, cls.image = mcuimg.make_image(version=(1, 4, 0, 0), size=8 * 1024, seed=3)
        cls.upload_reply = (201, upload(d, imgdata, name="v1.4.bin"))
        cls.sse = SSEClient(d)
        status, cls.jobs_reply = d.api("POST", "/api/v1/jobs", {"image": cls.image, "devices": [cls.dev],
                                                                 "mode": "upload-only"})
        cls.jobs_reply = (status, cls.jobs_reply)
        cls.job = cls.jobs_reply[1]["jobs"][0]["id"]
        wait_jobs_finished(d, [cls.job])

    @classmethod
    def tearDownClass(cls):
        cls.sse.close()
        cls.d.__exit__(None, None, None)
        cls.sim.__exit__(None, None, None)

    def response_schema(self, template, method, status):
        operation = self.doc["paths"][template][method.lower()]
        responses = operation["responses"]
        self.assertIn(str(status), responses, "%s %s: status %d is not documented" % (method, template, status))
        return self.schema_of(resolve(self.doc, responses[str(status)]), "%s %s %d" % (method, template, status))

    def schema_of(self, response, what):
        content = response.get("content", {})
        self.assertIn("application/json", content, "%s: no application/json content documented" % what)
        return content["application/json"]["schema"]

    def validate(self, schema, instance, what):
        schema = dict(to_json_schema(schema))
        schema["definitions"] = self.definitions
        errors = sorted(jsonschema.Draft4Validator(schema, format_checker=format_checker()).iter_errors(instance),
                        key=lambda e: list(e.absolute_path))
        self.assertEqual(["%s: %s" % ("/".join(str(p) for p in e.absolute_path), e.message[:300]) for e in errors],
                         [], "%s does not match doc/openapi.yaml" % what)

    def check(self, method, path, template, status, body=None, token=True, **kw):
        got, headers, data = self.d.http(method, path, body, token=token, **kw)
        self.assertEqual(got, status, "%s %s: %d %r" % (method, path, got, data[:300]))
        self.assertTrue(headers.get("content-type", "").startswith("application/json"), (path, headers))
        doc = json.loads(data)
        self.validate(self.response_schema(template, method, status), doc, "%s %s (%d)" % (method, path, status))
        self.checked.add((method, template, status))
        return doc

    def test_0_rollouts_and_labels(self):
        """Labels and rollouts: every endpoint's answers and errors (runs
        first, so test_event_data sees the rollout-* events)."""
        dev = "/api/v1/devices/%d" % self.dev
        self.check("PUT", dev + "/labels", "/api/v1/devices/{device}/labels", 200, body={"labels": ["relay", "a"]})
        labels = self.check("GET", dev + "/labels", "/api/v1/devices/{device}/labels", 200)
        self.assertEqual(labels["labels"], ["a", "relay"])
        self.check("PUT", dev + "/labels", "/api/v1/devices/{device}/labels", 400, body={"labels": ["A B"]})
        self.check("GET", "/api/v1/devices/999999/labels", "/api/v1/devices/{device}/labels", 404)
        self.check("GET", "/api/v1/devices?label=relay", "/api/v1/devices", 200)
        spec = {"image": self.image, "mode": "upload-only", "targets": {"filter": {"labels": ["relay"]}},
                "schedule": {"windows": [{"days": ["mon", "sat"], "from": "00:00", "to": "24:00"},
                                         {"from": "00:00", "to": "24:00"}],
                             "timezone": "Europe/Berlin"},
                "policy": {"canary": "1", "wave_size": "50%"}}
        plan = self.check("POST", "/api/v1/rollouts/plan", "/api/v1/rollouts/plan", 200, body=spec)
        self.assertEqual(plan["waves"][0]["devices"], [self.dev])
        self.check("POST", "/api/v1/rollouts/plan", "/api/v1/rollouts/plan", 400, body={"image": self.image})
        r = self.check("POST", "/api/v1/rollouts", "/api/v1/rollouts", 201, body=spec)
        rid = r["id"]
        self.check("POST", "/api/v1/rollouts", "/api/v1/rollouts", 400,
                   body=dict(spec, policy={"canary": "0%"}))
        self.check("POST", "/api/v1/rollouts", "/api/v1/rollouts", 404,
                   body=dict(spec, targets={"devices": [999999]}))
        path = "/api/v1/rollouts/%d" % rid
        self.d.wait_for(lambda: self.d.api("GET", path)[1]["state"] == "completed", timeout=60,
                        what="the rollout to complete")
        self.check("GET", "/api/v1/rollouts", "/api/v1/rollouts", 200)
        self.check("GET", "/api/v1/rollouts?state=completed", "/api/v1/rollouts", 200)
        self.check("GET", "/api/v1/rollouts?state=nonsense", "/api/v1/rollouts", 400)
        self.check("GET", path, "/api/v1/rollouts/{rollout}", 200)
        self.check("GET", "/api/v1/rollouts/999999", "/api/v1/rollouts/{rollout}", 404)
        self.check("GET", path + "/members", "/api/v1/rollouts/{rollout}/members", 200)
        self.check("GET", path + "/members?state=succeeded&wave=0", "/api/v1/rollouts/{rollout}/members", 200)
        self.check("GET", path + "/members?wave=x", "/api/v1/rollouts/{rollout}/members", 400)
        self.check("GET", path + "/plan", "/api/v1/rollouts/{rollout}/plan", 200)
        for verb in ("pause", "resume", "cancel", "activate"):
            self.check("POST", path + "/" + verb, "/api/v1/rollouts/{rollout}/" + verb, 409)
        r = self.check("POST", "/api/v1/rollouts", "/api/v1/rollouts", 201,
                       body=dict(spec, schedule={"start_at": "2099-01-01T00:00:00Z"}))
        path = "/api/v1/rollouts/%d" % r["id"]
        self.check("POST", path + "/pause", "/api/v1/rollouts/{rollout}/pause", 200)
        self.check("POST", path + "/resume", "/api/v1/rollouts/{rollout}/resume", 200)
        self.check("POST", path + "/resume", "/api/v1/rollouts/{rollout}/resume", 409)
        self.check("POST", path + "/activate", "/api/v1/rollouts/{rollout}/activate", 200)
        self.check("POST", path + "/cancel", "/api/v1/rollouts/{rollout}/cancel", 200)
        self.d.api("PUT", dev + "/labels", {"labels": []}, expect=200)

    def test_get_endpoints(self):
        conn = urllib.parse.quote(self.conn, safe="")
        self.check("GET", "/api/v1/health", "/api/v1/health", 200, token=False)
        lst = self.check("GET", "/api/v1/devices", "/api/v1/devices", 200)
        self.assertEqual(lst["total"], 2)
        self.check("GET", "/api/v1/devices?state=online&limit=1", "/api/v1/devices", 200)
        dev = self.check("GET", "/api/v1/devices/%d" % self.dev, "/api/v1/devices/{device}", 200)
        self.assertIn(dev["smp_version"], (1, 2))
        silent = self.check("GET", "/api/v1/devices/%d" % self.silent, "/api/v1/devices/{device}", 200)
        self.assertIsNone(silent["smp_version"])
        self.check("GET", "/api/v1/devices/" + conn, "/api/v1/devices/{device}", 200)
        hist = self.check("GET", "/api/v1/devices/%d/history" % self.dev, "/api/v1/devices/{device}/history", 200)
        self.assertTrue(hist["events"])
        self.check("GET", "/api/v1/images", "/api/v1/images", 200)
        self.check("GET", "/api/v1/images/" + self.image, "/api/v1/images/{image}", 200)
        self.check("GET", "/api/v1/jobs", "/api/v1/jobs", 200)
        self.check("GET", "/api/v1/jobs?state=succeeded", "/api/v1/jobs", 200)
        job = self.check("GET", "/api/v1/jobs/%d" % self.job, "/api/v1/jobs/{job}", 200)
        self.assertEqual(job["state"], "succeeded", job)

    def test_errors(self):
        for path, template in (("/api/v1/devices/999999", "/api/v1/devices/{device}"),
                               ("/api/v1/devices/999999/history", "/api/v1/devices/{device}/history"),
                               ("/api/v1/images/00ff", "/api/v1/images/{image}"),
                               ("/api/v1/jobs/999999", "/api/v1/jobs/{job}")):
            self.check("GET", path, template, 404)
        for path in ("/api/v1/devices", "/api/v1/images", "/api/v1/jobs", "/api/v1/devices/%d" % self.dev,
                     "/api/v1/jobs/%d" % self.job):
            template = re.sub(r"/devices/\d+", "/devices/{device}", path)
            template = re.sub(r"/jobs/\d+", "/jobs/{job}", template)
            self.check("GET", path, template, 401, token=False)
        self.check("GET", "/api/v1/devices?limit=0", "/api/v1/devices", 400)
        self.check("GET", "/api/v1/jobs?state=nonsense", "/api/v1/jobs", 400)
        self.check("GET", "/api/v1/devices/%d/history?limit=x" % self.dev, "/api/v1/devices/{device}/history", 400)
        self.check("POST", "/api/v1/jobs/%d/cancel" % self.job, "/api/v1/jobs/{job}/cancel", 409)
        # only a staged job can be activated
        self.check("POST", "/api/v1/jobs/%d/activate" % self.job, "/api/v1/jobs/{job}/activate", 400)
        self.check("POST", "/api/v1/jobs/999999/activate", "/api/v1/jobs/{job}/activate", 404)
        self.check("DELETE", "/api/v1/jobs/%d" % self.job, "/api/v1/jobs/{job}", 409)
        self.check("POST", "/api/v1/devices", "/api/v1/devices", 400, body={"conn": 5})
        self.check("POST", "/api/v1/devices", "/api/v1/devices", 415, body=b"{}",
                   headers={"Content-Type": "text/plain"})
        self.check("POST", "/api/v1/jobs", "/api/v1/jobs", 404, body={"image": "00ff00ff", "devices": [self.dev]})
        # 405 is documented once, as a reusable response.
        got, headers, data = self.d.http("PUT", "/api/v1/devices")
        self.assertEqual(got, 405)
        self.validate(self.schema_of(self.doc["components"]["responses"]["MethodNotAllowed"], "405"),
                      json.loads(data), "PUT /api/v1/devices (405)")
        # A control character in the path.
        got, _, data = self.d.http("GET", "/api/v1/jobs/1%00/cancel")
        self.assertEqual(got, 400)
        self.validate({"$ref": "#/components/schemas/Error"}, json.loads(data), "GET /api/v1/jobs/1%00/cancel")

    def test_busy_and_cancel(self):
        # A job for the device that never answers stays unfinished.
        doc = self.check("POST", "/api/v1/jobs", "/api/v1/jobs", 201, body={"image": self.image,
                                                                            "devices": [self.silent]})
        job = doc["jobs"][0]["id"]
        self.check("POST", "/api/v1/jobs", "/api/v1/jobs", 409, body={"image": self.image, "devices": [self.silent]})
        self.check("DELETE", "/api/v1/devices/%d" % self.silent, "/api/v1/devices/{device}", 409)
        self.check("DELETE", "/api/v1/images/" + self.image, "/api/v1/images/{image}", 409)
        self.check("GET", "/api/v1/devices/%d" % self.silent, "/api/v1/devices/{device}", 200)
        self.check("POST", "/api/v1/jobs/%d/cancel" % job, "/api/v1/jobs/{job}/cancel", 200)
        self.check("GET", "/api/v1/jobs/%d" % job, "/api/v1/jobs/{job}", 200)

    def test_post_replies(self):
        status, doc = self.upload_reply
        self.validate(self.response_schema("/api/v1/images", "POST", status), doc, "POST /api/v1/images")
        status, doc = self.jobs_reply
        self.validate(self.response_schema("/api/v1/jobs", "POST", status), doc, "POST /api/v1/jobs")
        self.check("POST", "/api/v1/devices", "/api/v1/devices", 200, body={"conn": self.conn})

    def test_event_data(self):
        # The data of each event is the object as GET returns it.
        schemas = {"device-added": "Device", "device-changed": "Device", "image-added": "Image",
                   "job-added": "Job", "job-state": "Job", "job-progress": "Job",
                   "rollout-added": "Rollout", "rollout-state": "Rollout", "rollout-progress": "Rollout",
                   "rollout-member": "RolloutMember"}
        removed = {"type": "object", "required": ["id"], "additionalProperties": False,
                   "properties": {"id": {"type": ["integer", "string"]}}}
        self.sse.wait_for(lambda evs: any(e[0] == "job-state" and e[2]["state"] == "succeeded" for e in evs),
                          timeout=30, what="the job's end")
        seen = set()
        for name, number, data in self.sse.snapshot():
            seen.add(name)
            if name in schemas:
                self.validate({"$ref": "#/components/schemas/" + schemas[name]}, data, "event %s #%d" % (name, number))
            elif name.endswith("-removed"):
                self.validate(removed, data, "event %s #%d" % (name, number))
        self.assertTrue({"job-added", "job-state", "job-progress"} <= seen, seen)
        self.assertTrue({"rollout-added", "rollout-state", "rollout-member"} <= seen, seen)


if __name__ == "__main__":
    unittest.main(verbosity=2)
