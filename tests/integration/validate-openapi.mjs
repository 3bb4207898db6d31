// SPDX-License-Identifier: MIT
//
// The npm half of tests/integration/test_contract.py: reads api/openapi.yaml
// and answers in JSON on stdout.
//
//   node validate-openapi.mjs lint SPEC
//       The document against the OpenAPI 3.1 schema (swagger-parser), every
//       schema in it compiled by Ajv in strict mode (a misspelt keyword is an
//       error, not an ignored annotation), and warden's own rules.
//       Prints {"ok": bool, "errors": [...]}; exits 1 when not ok.
//   node validate-openapi.mjs routes SPEC
//       Prints [{"path", "methods": ["GET", ...], "params": {"name": "path", ...},
//                "responses": {"GET": ["200", "401", ...], ...},
//                "security": {"GET": {"anonymous": bool, "roles": ["operator"]}, ...}}].
//   node validate-openapi.mjs validate SPEC RECORDINGS.json
//       RECORDINGS is a JSON array of recorded exchanges:
//         {"method", "route" (a path template of SPEC, or null), "status"
//          (0: no answer, then "transport" says why), "headers": {lower-case
//          name: value}, "body": text}
//       Prints one verdict per line: {"index", "ok", "errors": [...],
//       "against": "the JSON pointer of the response object used"}.
//
// The packages come from the directory in WARDEN_NPM_DIR (where
// test_contract.py installs package-lock.json), else from next to this file.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(process.env.WARDEN_NPM_DIR || here, "package.json"));
const YAML = require("yaml");
const SwaggerParser = require("@apidevtools/swagger-parser");
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats").default;

const BASE = "https://warden.invalid/openapi.json";
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
// Keywords of an OpenAPI document that Ajv must not take for misspelt
// schema keywords: the document's own structure (Ajv is given the whole
// document so that "#/components/..." references resolve) and the OAS
// schema extensions.
const OAS_KEYWORDS = ["openapi", "info", "jsonSchemaDialect", "servers", "paths", "webhooks", "components",
                      "security", "tags", "externalDocs", "example", "xml", "discriminator"];
// Responses any request may get whatever its route: see the document's
// description. Used for recordings whose route is not in the document.
const ROUTELESS = { 400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 413: "ContentTooLarge",
                    500: "InternalError", 503: "ServiceUnavailable" };

function loadSpec(file) {
	const doc = YAML.parse(readFileSync(file, "utf8"), { prettyErrors: true, uniqueKeys: true });
	if (!doc || typeof doc !== "object")
		throw new Error(`${file}: not a YAML mapping`);
	return doc;
}

const esc = (s) => s.replace(/~/g, "~0").replace(/\//g, "~1");
const ptr = (...parts) => "/" + parts.map((p) => esc(String(p))).join("/");

function at(doc, pointer) {
	let o = doc;
	for (const raw of pointer.split("/").slice(1)) {
		const k = raw.replace(/~1/g, "/").replace(/~0/g, "~");
		if (o === null || typeof o !== "object" || !(k in o))
			return undefined;
		o = o[k];
	}
	return o;
}

// Follows local $refs (outside schemas: responses, headers, parameters);
// returns [object, its pointer].
function follow(doc, obj, pointer) {
	for (let i = 0; obj && typeof obj === "object" && typeof obj.$ref === "string" && i < 16; i++) {
		if (!obj.$ref.startsWith("#/"))
			throw new Error(`${pointer}: only local references are supported: ${obj.$ref}`);
		pointer = obj.$ref.slice(1);
		obj = at(doc, pointer);
	}
	return [obj, pointer];
}

function makeAjv(doc) {
	const ajv = new Ajv2020({ strict: true, strictTypes: false, strictTuples: false,
	                           strictRequired: false, allErrors: true });
	addFormats(ajv);
	for (const k of OAS_KEYWORDS)
		ajv.addKeyword(k);
	ajv.addSchema(doc, BASE);
	const cache = new Map();
	return {
		// A validator for the schema at `pointer` inside the document.
		compile(pointer) {
			if (!cache.has(pointer))
				cache.set(pointer, ajv.compile({ $ref: BASE + "#" + pointer }));
			return cache.get(pointer);
		},
		errorsText(errors) {
			return (errors || []).map((e) => `${e.instancePath || "(body)"} ${e.message}` +
				(e.params && Object.keys(e.params).length ? " " + JSON.stringify(e.params) : ""));
		},
	};
}

function operations(doc) {
	const out = [];
	for (const [p, item] of Object.entries(doc.paths || {}))
		for (const m of METHODS)
			if (item[m])
				out.push({ path: p, method: m.toUpperCase(), op: item[m], item });
	return out;
}

// Every place a schema sits, as pointers: components.schemas, parameters,
// headers, request and response media types.
function schemaPointers(doc) {
	const out = [];
	const comps = doc.components || {};
	for (const k of Object.keys(comps.schemas || {}))
		out.push(ptr("components", "schemas", k));
	for (const [k, v] of Object.entries(comps.parameters || {}))
		if (v.schema)
			out.push(ptr("components", "parameters", k, "schema"));
	for (const [k, v] of Object.entries(comps.headers || {}))
		if (v.schema)
			out.push(ptr("components", "headers", k, "schema"));
	const media = (content, ...base) => {
		for (const [mt, m] of Object.entries(content || {}))
			if (m.schema)
				out.push(ptr(...base, "content", mt, "schema"));
	};
	for (const [k, v] of Object.entries(comps.responses || {}))
		media(v.content, "components", "responses", k);
	for (const { path: p, method, op } of operations(doc)) {
		const m = method.toLowerCase();
		if (op.requestBody && !op.requestBody.$ref)
			media(op.requestBody.content, "paths", p, m, "requestBody");
		for (const [st, r] of Object.entries(op.responses || {}))
			if (!r.$ref)
				media(r.content, "paths", p, m, "responses", st);
	}
	return out;
}

// warden's own rules, beyond what the OpenAPI schema checks.
function houseRules(doc) {
	const errors = [];
	const ids = new Set();
	for (const { path: p, method, op, item } of operations(doc)) {
		const where = `${method} ${p}`;
		const mutation = ["POST", "PUT", "DELETE", "PATCH"].includes(method);
		if (!op.operationId)
			errors.push(`${where}: no operationId`);
		else if (ids.has(op.operationId))
			errors.push(`${where}: operationId ${op.operationId} used twice`);
		ids.add(op.operationId);
		if (!op.summary)
			errors.push(`${where}: no summary`);
		// path template parameters are declared, and only those
		const declared = new Set();
		for (const prm of [...(item.parameters || []), ...(op.parameters || [])]) {
			const [pp] = follow(doc, prm, "");
			if (pp && pp.in === "path")
				declared.add(pp.name);
		}
		const inTemplate = new Set([...p.matchAll(/\{([^}]+)\}/g)].map((x) => x[1]));
		for (const n of inTemplate)
			if (!declared.has(n))
				errors.push(`${where}: path parameter {${n}} is not declared`);
		for (const n of declared)
			if (!inTemplate.has(n))
				errors.push(`${where}: path parameter ${n} is declared but not in the path`);
		const headers = new Set([...(item.parameters || []), ...(op.parameters || [])].map(
			(x) => follow(doc, x, "")[0]).filter((x) => x && x.in === "header").map((x) => x.name));
		if (mutation && !headers.has("Idempotency-Key"))
			errors.push(`${where}: a mutation without the Idempotency-Key parameter`);
		const st = Object.keys(op.responses || {});
		for (const must of ["500", "503"])
			if (!st.includes(must))
				errors.push(`${where}: no ${must} response`);
		const security = op.security || doc.security || [];
		const anonymous = security.some((s) => Object.keys(s).length === 0);
		if (security.length && !st.includes("401"))
			errors.push(`${where}: needs a token but has no 401 response`);
		if (mutation && !st.includes("403"))
			errors.push(`${where}: a mutation without a 403 response (monitor token)`);
		if (mutation && !st.includes("422"))
			errors.push(`${where}: a mutation without a 422 response (Idempotency-Key reuse)`);
		if (mutation && anonymous)
			errors.push(`${where}: a mutation open to anonymous callers`);
		if (mutation && !security.every((s) => (s.bearer || []).includes("operator")))
			errors.push(`${where}: a mutation that does not require the operator role`);
		if (inTemplate.size && !st.includes("404"))
			errors.push(`${where}: names a resource but has no 404 response`);
		if (op.requestBody && !st.includes("400") && Object.keys(op.requestBody.content || {}).some((m) => m.includes("json")))
			errors.push(`${where}: takes JSON but has no 400 response`);
		for (const [code, r0] of Object.entries(op.responses || {})) {
			const [r, rp] = follow(doc, r0, ptr("paths", p, method.toLowerCase(), "responses", code));
			if (!r) {
				errors.push(`${where} ${code}: unresolvable response`);
				continue;
			}
			const types = Object.keys(r.content || {});
			if (/^[45]/.test(code) && (types.length !== 1 || types[0] !== "application/problem+json"))
				errors.push(`${where} ${code}: an error response must be application/problem+json only (${rp})`);
			const schema = ((r.content || {})["application/json"] || {}).schema || {};
			if (mutation && /^20[02]$/.test(code) && /^#\/components\/schemas\/(Finished|Running)?Operation$/.test(schema.$ref || "") &&
			    !(r.headers && r.headers.Location))
				errors.push(`${where} ${code}: an operation without a Location header`);
			if (code === "204" && types.length)
				errors.push(`${where} 204: has content`);
			if (code === "401" && !(r.headers && r.headers["WWW-Authenticate"]))
				errors.push(`${where} 401: no WWW-Authenticate header`);
		}
	}
	const [mna] = follow(doc, { $ref: "#/components/responses/MethodNotAllowed" }, "");
	if (!mna || !mna.headers || !mna.headers.Allow)
		errors.push("components.responses.MethodNotAllowed with an Allow header is missing");
	for (const name of Object.values(ROUTELESS))
		if (!at(doc, ptr("components", "responses", name)))
			errors.push(`components.responses.${name} is missing`);
	return errors;
}

async function lint(file) {
	const errors = [];
	let doc;
	try {
		doc = loadSpec(file);
	} catch (e) {
		return { ok: false, errors: [`YAML: ${e.message}`] };
	}
	if (!/^3\.1\./.test(String(doc.openapi)))
		errors.push(`openapi is ${doc.openapi}, not 3.1.x`);
	try {
		await SwaggerParser.validate(structuredClone(doc));
	} catch (e) {
		errors.push(`swagger-parser: ${e.message}`);
	}
	let ajv;
	try {
		ajv = makeAjv(structuredClone(doc));
	} catch (e) {
		errors.push(`ajv: ${e.message}`);
	}
	if (ajv)
		for (const p of schemaPointers(doc))
			try {
				ajv.compile(p);
			} catch (e) {
				errors.push(`schema ${p}: ${e.message}`);
			}
	errors.push(...houseRules(doc));
	return { ok: errors.length === 0, errors };
}

function routes(file) {
	const doc = loadSpec(file);
	return Object.entries(doc.paths || {}).map(([p, item]) => {
		const params = {};
		for (const m of METHODS.filter((m) => item[m]))
			for (const prm of [...(item.parameters || []), ...(item[m].parameters || [])]) {
				const [pp] = follow(doc, prm, "");
				params[pp.name] = pp.in;
			}
		const ms = METHODS.filter((m) => item[m]);
		const responses = Object.fromEntries(ms.map((m) => [m.toUpperCase(), Object.keys(item[m].responses || {})]));
		// who may call: anonymous (an empty requirement), or the bearer roles asked
		const security = Object.fromEntries(ms.map((m) => {
			const reqs = item[m].security || doc.security || [];
			return [m.toUpperCase(), {
				anonymous: reqs.length === 0 || reqs.some((r) => Object.keys(r).length === 0),
				roles: [...new Set(reqs.flatMap((r) => r.bearer || []))],
			}];
		}));
		return { path: p, methods: ms.map((m) => m.toUpperCase()), params, responses, security };
	});
}

function parseMediaType(s) {
	const [essence, ...rest] = String(s || "").split(";");
	const params = {};
	for (const r of rest) {
		const i = r.indexOf("=");
		if (i > 0)
			params[r.slice(0, i).trim().toLowerCase()] = r.slice(i + 1).trim().replace(/^"|"$/g, "").toLowerCase();
	}
	return { essence: essence.trim().toLowerCase(), params };
}

// The documented media type the actual Content-Type is an instance of: same
// type/subtype, and every parameter the document names present with its value.
function matchMediaType(documented, actual) {
	const a = parseMediaType(actual);
	for (const key of documented) {
		const d = parseMediaType(key);
		if (d.essence === a.essence && Object.entries(d.params).every(([k, v]) => a.params[k] === v))
			return key;
	}
	return null;
}

// Events as a client dispatches them (WHATWG HTML, server-sent events):
// blocks separated by a blank line, comments skipped, and a block without
// data dispatches nothing (e.g. a lone "retry:"). An unfinished last block
// (the stream was cut while reading) is dropped.
function parseEventStream(text) {
	const events = [];
	const blocks = text.replace(/\r\n?/g, "\n").split(/\n\n/);
	blocks.pop();
	for (const block of blocks) {
		const ev = { id: null, event: "message", data: [], unknown: [] };
		for (const line of block.split("\n")) {
			if (line === "" || line.startsWith(":"))
				continue;
			const i = line.indexOf(":");
			const field = i < 0 ? line : line.slice(0, i);
			const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
			if (field === "id")
				ev.id = value;
			else if (field === "event")
				ev.event = value;
			else if (field === "data")
				ev.data.push(value);
			else if (field !== "retry")
				ev.unknown.push(field);
			else if (!/^[0-9]+$/.test(value))
				ev.unknown.push("retry: " + value);
		}
		if (ev.data.length || ev.unknown.length)
			events.push(ev);
	}
	return events;
}

function findResponse(doc, rec) {
	const method = String(rec.method).toUpperCase();
	const status = String(rec.status);
	const item = rec.route != null ? (doc.paths || {})[rec.route] : undefined;
	if (rec.route != null && !item)
		return { error: `route ${rec.route} is not in the document` };
	if (status === "405") {
		const m = method === "HEAD" ? "get" : method.toLowerCase();
		if (item && item[m])
			return { error: `405 for ${method}, which the document lists for ${rec.route}` };
		return { pointer: "/components/responses/MethodNotAllowed" };
	}
	if (!item) {
		if (ROUTELESS[status])
			return { pointer: ptr("components", "responses", ROUTELESS[status]) };
		return { error: `status ${status} is not documented for a path outside the document` };
	}
	const m = method === "HEAD" ? "get" : method.toLowerCase();
	if (!item[m]) {
		// Whether this status is right is the route check's business (it
		// wants 405); here only its shape is checked.
		if (ROUTELESS[status])
			return { pointer: ptr("components", "responses", ROUTELESS[status]) };
		return { error: `${method} ${rec.route} is not documented, and ${status} is no answer for it` };
	}
	const responses = item[m].responses || {};
	for (const k of [status, status[0] + "XX", "default"])
		if (responses[k])
			return { pointer: ptr("paths", rec.route, m, "responses", k) };
	return { error: `status ${status} is not documented for ${method} ${rec.route} (documented: ${Object.keys(responses).join(", ")})` };
}

function validateOne(doc, ajv, rec) {
	const errors = [];
	if (!rec.status)  // nothing to validate; the caller reports the missing answer
		return { ok: true, errors: [], against: null, skipped: `no HTTP answer: ${rec.transport || "?"}` };
	const found = findResponse(doc, rec);
	if (found.error)
		return { ok: false, errors: [found.error], against: null };
	const [resp, rptr] = follow(doc, at(doc, found.pointer), found.pointer);
	const headers = Object.fromEntries(Object.entries(rec.headers || {}).map(([k, v]) => [k.toLowerCase(), v]));
	const body = rec.body ?? "";
	const isHead = String(rec.method).toUpperCase() === "HEAD";

	for (const [name, h0] of Object.entries(resp.headers || {})) {
		const [h, hptr] = follow(doc, h0, rptr + ptr("headers", name));
		const v = headers[name.toLowerCase()];
		if (v === undefined) {
			if (h.required)
				errors.push(`header ${name} is missing`);
			continue;
		}
		if (h.schema) {
			const val = ajv.compile(hptr + "/schema");
			if (!val(v))
				errors.push(...ajv.errorsText(val.errors).map((e) => `header ${name}: ${JSON.stringify(v)}: ${e}`));
		}
	}

	const content = resp.content || {};
	const types = Object.keys(content);
	if (!types.length) {
		if (body.length)
			errors.push(`a ${rec.status} response documented without content has a body of ${body.length} bytes`);
		return { ok: errors.length === 0, errors, against: rptr };
	}
	const ctype = headers["content-type"];
	const key = matchMediaType(types, ctype);
	if (!key) {
		errors.push(`Content-Type ${JSON.stringify(ctype ?? null)} is none of the documented ${types.join(", ")}`);
		return { ok: false, errors, against: rptr };
	}
	if (isHead) {
		if (body.length)
			errors.push("a HEAD response has a body");
		return { ok: errors.length === 0, errors, against: rptr };
	}
	const media = content[key];
	const sptr = rptr + ptr("content", key, "schema");
	const essence = parseMediaType(key).essence;
	if (essence === "text/event-stream") {
		const kinds = media["x-warden-events"] || {};
		let last = -1;
		const before = errors.length;
		for (const ev of parseEventStream(body)) {
			const where = `event id ${ev.id} (${ev.event})`;
			if (ev.unknown.length)
				errors.push(`${where}: unknown fields ${ev.unknown.join(", ")}`);
			if (ev.id === null || !/^[0-9]+$/.test(ev.id))
				errors.push(`${where}: id is not a non-negative integer`);
			else if (Number(ev.id) <= last)
				errors.push(`${where}: id does not increase (previous ${last})`);
			else
				last = Number(ev.id);
			if (!kinds[ev.event]) {
				errors.push(`${where}: event type is not documented (documented: ${Object.keys(kinds).join(", ")})`);
				continue;
			}
			if (ev.data.length !== 1) {
				errors.push(`${where}: ${ev.data.length} data lines, not one`);
				continue;
			}
			let data;
			try {
				data = JSON.parse(ev.data[0]);
			} catch (e) {
				errors.push(`${where}: data is not JSON: ${e.message}`);
				continue;
			}
			const val = ajv.compile(rptr + ptr("content", key, "x-warden-events", ev.event));
			if (!val(data))
				errors.push(...ajv.errorsText(val.errors).map((e) => `${where}: ${e}`));
		}
		// one line per distinct problem and event type, with a count
		const seen = new Map();
		for (const e of errors.splice(before)) {
			const k = e.replace(/^event id \S+ /, "");
			const v = seen.get(k) || { first: e, n: 0 };
			v.n++;
			seen.set(k, v);
		}
		for (const { first, n } of seen.values())
			errors.push(n > 1 ? `${first} (and ${n - 1} more like it)` : first);
	} else if (essence === "application/json" || essence.endsWith("+json")) {
		let data;
		try {
			data = JSON.parse(body);
		} catch (e) {
			errors.push(`body is not JSON: ${e.message}`);
		}
		if (data !== undefined && media.schema) {
			const val = ajv.compile(sptr);
			if (!val(data))
				errors.push(...ajv.errorsText(val.errors));
			if (essence === "application/problem+json" && data && data.status !== undefined &&
			    String(data.status) !== String(rec.status))
				errors.push(`problem status ${data.status} differs from the HTTP status ${rec.status}`);
		}
	} else if (media.schema) {
		const val = ajv.compile(sptr);
		if (!val(body))
			errors.push(...ajv.errorsText(val.errors));
	}
	return { ok: errors.length === 0, errors, against: rptr };
}

function validate(file, recordingsFile) {
	const doc = loadSpec(file);
	const ajv = makeAjv(structuredClone(doc));
	const recs = JSON.parse(readFileSync(recordingsFile, "utf8"));
	return recs.map((rec, index) => {
		try {
			return { index, ...validateOne(doc, ajv, rec) };
		} catch (e) {
			return { index, ok: false, errors: [`validator: ${e.message}`], against: null };
		}
	});
}

async function main(argv) {
	const [cmd, spec, extra] = argv;
	if (cmd === "lint" && spec) {
		const r = await lint(spec);
		process.stdout.write(JSON.stringify(r) + "\n");
		return r.ok ? 0 : 1;
	}
	if (cmd === "routes" && spec) {
		process.stdout.write(JSON.stringify(routes(spec)) + "\n");
		return 0;
	}
	if (cmd === "validate" && spec && extra) {
		for (const v of validate(spec, extra))
			process.stdout.write(JSON.stringify(v) + "\n");
		return 0;
	}
	process.stderr.write("usage: validate-openapi.mjs lint SPEC | routes SPEC | validate SPEC RECORDINGS.json\n");
	return 2;
}

process.exitCode = await main(process.argv.slice(2));
