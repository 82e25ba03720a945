#!/usr/bin/env python3
"""Writes the golden bad-input cases of the groups cli/, keys/, bundles/, signed-results/ and
findings/ (the files are committed; rerun this only to change them).

    cargo build -p sandbox --bin sandbox --example seal
    python3 sandbox/tests/bad-inputs/make-cases.py

Keys, sealed bundles and signed results are made with the real binary and the `seal` example
(which seals JSON to a public key as a lab does, and as anyone holding the public key can).
"""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
SANDBOX = os.path.join(TARGET, "debug", "sandbox")
SEAL = os.path.join(TARGET, "debug", "examples", "seal")
GROUPS = ["cli", "keys", "bundles", "signed-results", "findings"]

WORK = tempfile.mkdtemp()


def sh(*args, stdin=None):
    out = subprocess.run(args, input=stdin, capture_output=True)
    if out.returncode != 0:
        sys.exit(f"{args}: {out.stderr.decode()}")
    return out.stdout


def keypair(name):
    prefix = os.path.join(WORK, name)
    sh(SANDBOX, "keys", "generate", prefix)
    return open(prefix + ".key").read(), open(prefix + ".pub").read(), prefix + ".pub"


KEY, PUB, PUB_PATH = keypair("instructor")
OTHER_KEY, OTHER_PUB, OTHER_PUB_PATH = keypair("other")
SCENARIO = open(os.path.join(REPO, "scenarios", "packet-loss.yaml")).read()
# The lab ran an edited copy (as the certification test does), so grading needs --scenario.
LAB_SCENARIO = SCENARIO.replace("start_after: 20s", "start_after: 1s")
SEED, DRAW = 7, {"loss_pct": 8}  # what packet-loss draws for seed 7
RIGHT = {"findings": [{"root_cause": "packet-loss",
                       "where": {"link": {"from": "payments", "to": "ledger"}},
                       "magnitude": {"percent": 8}}]}


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def facts(**edit):
    f = {"candidate": "alice", "scenario_id": "packet-loss", "lab_id": "k3f9q",
         "scenario_sha256": sha(LAB_SCENARIO), "seed": SEED, "params": dict(DRAW),
         "faults": [], "ready_ms": 1_000_000}
    f.update(edit)
    return f


def seal(value, pub=PUB_PATH):
    return sh(SEAL, pub, stdin=json.dumps(value).encode()).decode()


def bundle(facts_value=None, **edit):
    f = facts() if facts_value is None else facts_value
    b = {"format": "sandbox-submission/2", "candidate": "alice", "scenario_id": "packet-loss",
         "lab_id": "k3f9q", "scenario_sha256": f.get("scenario_sha256", sha(LAB_SCENARIO)),
         "submitted_ms": 1_600_000, "findings": RIGHT, "evidence": [], "hints": [],
         "attachments": {}, "sealed": seal(f)}
    b.update(edit)
    return b


def valid_result():
    d = os.path.join(WORK, "grading")
    os.makedirs(d)
    for name, text in [("bundle.json", json.dumps(bundle())), ("scenario.yaml", LAB_SCENARIO),
                       ("instructor.key", KEY)]:
        open(os.path.join(d, name), "w").write(text)
    sh(SANDBOX, "grade", f"{d}/bundle.json", "--key", f"{d}/instructor.key", "--scenario",
       f"{d}/scenario.yaml", "--out", f"{d}/results")
    return json.load(open(f"{d}/results/result-alice-k3f9q.json"))


def case(group, name, args, exit=2, stderr=(), absent=(), files=None, links=None):
    d = os.path.join(HERE, group, name)
    os.makedirs(d)
    for fname, content in (files or {}).items():
        path = os.path.join(d, fname)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if isinstance(content, (dict, list)):
            content = json.dumps(content, indent=2, ensure_ascii=False)
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(path, mode) as f:
            f.write(content)
    for lname, target in (links or {}).items():
        os.symlink(target, os.path.join(d, lname))
    with open(os.path.join(d, "case.yaml"), "w") as f:
        f.write(f"args: {json.dumps(args)}\nexit: {exit}\n")
        if stderr:
            f.write(f"stderr: {json.dumps(list(stderr))}\n")
        if absent:
            f.write(f"stderr_absent: {json.dumps(list(absent))}\n")


for g in GROUPS:
    shutil.rmtree(os.path.join(HERE, g), ignore_errors=True)

# ---------------------------------------------------------------------------------------- cli
for name, args, why in [
    ("no-subcommand", [], "Usage"),
    ("unknown-subcommand", ["frobnicate"], "unrecognized subcommand"),
    ("unknown-flag", ["list", "--colour"], "unexpected argument"),
    ("validate-without-files", ["validate"], "required"),
    ("validate-no-such-file", ["validate", "{dir}/nope.yaml"], "no scenario named"),
    ("validate-escape-in-name", ["validate", "\u001b[2J\u001b]0;pwned\u0007"], "no scenario named"),
    ("run-no-such-scenario", ["run", "no-such-scenario"], "no scenario named `no-such-scenario`"),
    ("run-certify-without-instructor", ["run", "packet-loss", "--certify", "alice"], "--instructor"),
    ("run-certify-with-seed", ["run", "packet-loss", "--certify", "a", "--instructor", "x.pub", "--seed", "3"], "cannot be used with"),
    ("run-seed-not-a-number", ["run", "packet-loss", "--seed", "abc"], "invalid value 'abc'"),
    ("run-seed-negative", ["run", "packet-loss", "--seed", "-1"], "unexpected argument"),
    ("run-seed-too-large", ["run", "packet-loss", "--seed", "18446744073709551616"], "--seed"),
    ("run-timeout-unparsable", ["run", "packet-loss", "--timeout", "5parsecs"], "--timeout"),
    ("status-watch-and-json", ["status", "--watch", "--json"], "cannot be used with"),
    ("logs-negative-lines", ["logs", "api", "-n", "-5"], "unexpected argument"),
    ("logs-without-service", ["logs"], "required"),
    ("probe-unknown", ["probe", "tcp-magic"], "invalid value 'tcp-magic'"),
    ("probe-duration-unparsable", ["probe", "tcp-rtt", "--duration", "forever"], "--duration"),
    ("grade-without-key", ["grade", "{dir}/b.json"], "--key"),
    ("grade-verify-without-public", ["grade", "--verify", "{dir}/r.json"], "--public"),
    ("grade-verify-with-bundles", ["grade", "--verify", "{dir}/r.json", "--public", "{dir}/p", "{dir}/b.json"], "cannot be used with"),
    ("grade-verify-with-scenario", ["grade", "--verify", "{dir}/r.json", "--public", "{dir}/p", "--scenario", "{dir}/s.yaml"], "cannot be used with"),
    ("keys-without-subcommand", ["keys"], "Usage"),
    ("keys-generate-without-prefix", ["keys", "generate"], "required"),
    ("completions-unknown-shell", ["completions", "cmd.exe"], "invalid value 'cmd.exe'"),
    ("findings-unknown-subcommand", ["findings", "fill"], "unrecognized subcommand"),
    ("submit-json-and-junit", ["submit", "{dir}/f.yaml", "--json", "--junit"], "cannot be used with"),
    ("submit-without-file", ["submit"], "required"),
    ("verify-without-scenarios", ["verify"], "required"),
    ("down-lab-and-all", ["down", "abcde", "--all"], "cannot be used with"),
]:
    case("cli", name, args, stderr=[why])

# Text from a scenario file reaches the terminal with its escape sequences shown, not run.
case("cli", "validate-escapes-in-field-name", ["validate", "{dir}/esc.yaml"],
     stderr=["esc.yaml:3:1", "unknown field", "?]0;pwned??[2J"],
     files={"esc.yaml": 'apiVersion: sandbox/v1\nkind: Scenario\n"\\e]0;pwned\\a\\e[2J": 1\n'})
case("cli", "validate-escapes-in-quoted-line", ["validate", "{dir}/esc.yaml"],
     stderr=["esc.yaml:3:", "x?[31m"],
     files={"esc.yaml": "apiVersion: sandbox/v1\nkind: Scenario\nmetadata: {id: x\u001b[31m, bogus: 1}\n"})

# --------------------------------------------------------------------------------------- keys
secret_line = [l for l in KEY.splitlines() if l.startswith("AGE-SECRET-KEY-")][0]
sign_secret = [l for l in KEY.splitlines() if l.startswith("SANDBOX-SIGNING-SECRET")][0]
age_public = [l for l in PUB.splitlines() if l.startswith("age1")][0]
sign_public = [l for l in PUB.splitlines() if l.startswith("SANDBOX-SIGNING-PUBLIC")][0]
GRADE_WITH_KEY = ["grade", "{dir}/bundle.json", "--key", "{dir}/instructor.key", "--out", "{tmp}/results"]
VERIFY_WITH_PUB = ["grade", "--verify", "{dir}/result.json", "--public", "{dir}/instructor.pub"]
b64 = lambda n: base64.b64encode(bytes(range(n))).decode()
for name, text, why, absent in [
    ("secret-empty", "", "needs a line starting AGE-SECRET-KEY-", []),
    ("secret-comment-only", "# sandbox instructor key\n", "needs a line starting AGE-SECRET-KEY-", []),
    ("secret-is-a-public-key", PUB, "needs a line starting AGE-SECRET-KEY-", [age_public]),
    ("secret-signing-not-base64", f"{secret_line}\nSANDBOX-SIGNING-SECRET !!not-base64!!\n", "not a 32-byte key", ["!!not-base64!!", secret_line]),
    ("secret-signing-31-bytes", f"{secret_line}\nSANDBOX-SIGNING-SECRET {b64(31)}\n", "not a 32-byte key", [secret_line]),
    ("secret-signing-33-bytes", f"{secret_line}\nSANDBOX-SIGNING-SECRET {b64(33)}\n", "not a 32-byte key", [secret_line]),
    ("secret-age-line-garbage", f"AGE-SECRET-KEY-1NOTBECH32ATALL\n{sign_secret}\n", "not a sandbox instructor key", ["NOTBECH32", sign_secret]),
    ("secret-without-signing-line", f"{secret_line}\n", "SANDBOX-SIGNING-SECRET", [secret_line]),
    ("secret-without-age-line", f"{sign_secret}\n", "AGE-SECRET-KEY-", [sign_secret]),
    ("secret-first-line-echo", "password=hunter2-do-not-echo\n", "instructor key", ["hunter2"]),
    ("secret-escape-sequences", "\u001b]0;pwned\u0007\u001b[2J\u001b[31mred\n", "instructor key", ["pwned"]),
    ("secret-too-large", "# padding\n" * 2000, "larger than 16384 bytes", []),
]:
    case("keys", name, GRADE_WITH_KEY, stderr=["instructor.key", why], absent=absent,
         files={"instructor.key": text})
case("keys", "secret-not-utf8", GRADE_WITH_KEY, stderr=["instructor.key", "not UTF-8"],
     files={"instructor.key": b"AGE-SECRET-KEY-\xff\xfe\x00\x01garbage\n"})
case("keys", "secret-is-dev-zero", ["grade", "{dir}/bundle.json", "--key", "/dev/zero", "--out", "{tmp}/r"],
     stderr=["/dev/zero", "larger than"])
case("keys", "secret-is-a-directory", ["grade", "{dir}/bundle.json", "--key", "{dir}", "--out", "{tmp}/r"],
     stderr=["is a directory"])
case("keys", "secret-missing", GRADE_WITH_KEY, stderr=["instructor.key", "No such file"])
case("keys", "secret-symlink-loop", GRADE_WITH_KEY, stderr=["instructor.key"],
     links={"instructor.key": "instructor.key"})
for name, text, why, absent in [
    ("public-empty", "", "needs a line starting age1", []),
    ("public-is-the-secret-key", KEY, "needs a line starting age1", [secret_line, sign_secret.split()[1]]),
    ("public-bad-recipient", f"age1notarecipient\n{sign_public}\n", "not a sandbox public key", ["notarecipient"]),
    ("public-signing-31-bytes", f"{age_public}\nSANDBOX-SIGNING-PUBLIC {b64(31)}\n", "not a 32-byte key", []),
    ("public-without-signing-line", f"{age_public}\n", "SANDBOX-SIGNING-PUBLIC", []),
    ("public-escape-sequences", "\u001b[2J\u001b]8;;http://x\u0007link\n", "public key", []),
]:
    case("keys", name, VERIFY_WITH_PUB, stderr=["instructor.pub", why], absent=absent,
         files={"instructor.pub": text})
case("keys", "public-missing", VERIFY_WITH_PUB, stderr=["instructor.pub", "No such file"])
case("keys", "public-is-dev-zero", ["grade", "--verify", "{dir}/result.json", "--public", "/dev/zero"],
     stderr=["larger than"])
GEN = ["keys", "generate", "{dir}/instructor"]
case("keys", "generate-symlink-at-key", GEN, stderr=["instructor.key: already exists (or is a symbolic link)"],
     files={"victim": "precious\n"}, links={"instructor.key": "victim"})
case("keys", "generate-dangling-symlink-at-key", GEN, stderr=["instructor.key: already exists"],
     links={"instructor.key": "nowhere"})
case("keys", "generate-symlink-at-public", GEN, stderr=["instructor.pub: already exists"],
     files={"victim": "precious\n"}, links={"instructor.pub": "victim"})
case("keys", "generate-symlink-to-outside", GEN, stderr=["instructor.key: already exists"],
     links={"instructor.key": "../tmp/stolen.key"})
case("keys", "generate-key-exists", GEN, stderr=["instructor.key: already exists"],
     files={"instructor.key": "old key, kept\n"})
case("keys", "generate-public-exists", GEN, stderr=["instructor.pub: already exists"],
     files={"instructor.pub": "old public key, kept\n"})
case("keys", "generate-prefix-is-a-directory", ["keys", "generate", "{dir}/keys"],
     stderr=["is not a file name prefix"], files={"keys/.keep": ""})
case("keys", "generate-prefix-trailing-slash", ["keys", "generate", "{dir}/keys/"],
     stderr=["is not a file name prefix"], files={"keys/.keep": ""})
case("keys", "generate-prefix-dot-dot", ["keys", "generate", "{dir}/.."], stderr=["is not a file name prefix"])
case("keys", "generate-prefix-empty", ["keys", "generate", ""], stderr=["a value is required"])
case("keys", "generate-in-missing-directory", ["keys", "generate", "{dir}/nope/instructor"],
     stderr=["nope/instructor.key", "No such file"])

# ------------------------------------------------------------------------------------ bundles
GRADE = ["grade", "{dir}/bundle.json", "--key", "{dir}/instructor.key", "--scenario",
         "{dir}/scenario.yaml", "--out", "{tmp}/results", "--csv", "{tmp}/grades.csv"]


def bad_bundle(name, content, why, absent=(), args=GRADE, scenario=LAB_SCENARIO, extra=None):
    files = {"instructor.key": KEY, "scenario.yaml": scenario}
    if content is not None:
        files["bundle.json"] = content
    files.update(extra or {})
    case("bundles", name, args, stderr=why, absent=absent, files=files)


def without(d, key):
    d = dict(d)
    del d[key]
    return d


good = bundle()
bad_bundle("not-json", "hello", ["bundle.json:1:1", "not valid JSON"])
bad_bundle("empty", "", ["bundle.json:1:0", "ends in the middle"])
bad_bundle("truncated", json.dumps(good)[:200], ["bundle.json:1:200", "ends in the middle"])
bad_bundle("json-array", [], ["bundle.json:1:", "expected struct Bundle"])
bad_bundle("json-null", "null", ["invalid type: null"])
bad_bundle("json-number", "42", ["invalid type: integer"])
bad_bundle("trailing-garbage", json.dumps(good) + "\nxyz", ["bundle.json:2:1", "not valid JSON"])
bad_bundle("deep-nesting", "[" * 100000, ["bundle.json:1:", "not a sandbox submission"])
bad_bundle("old-format", {**good, "format": "sandbox-submission/1"}, ["format is not sandbox-submission/2"])
for field in ["format", "candidate", "sealed", "findings", "scenario_sha256", "submitted_ms", "evidence"]:
    bad_bundle(f"missing-{field.replace('_', '-')}", without(good, field), [f"missing field `{field}`"])
bad_bundle("unknown-field-rubric", {**good, "rubric": {"expected": []}}, ["unknown field `rubric`"])
bad_bundle("duplicate-field", json.dumps(good)[:-1] + ', "candidate": "bob"}', ["duplicate field `candidate`"])
bad_bundle("submitted-ms-quoted-text", {**good, "submitted_ms": "SECRET-VALUE-do-not-echo"},
           ["submitted_ms", "invalid type: string"], absent=["SECRET-VALUE"])
bad_bundle("submitted-ms-negative", {**good, "submitted_ms": -5}, ["submitted_ms", "invalid value"])
bad_bundle("submitted-ms-too-large", json.dumps(good).replace('"submitted_ms": 1600000', '"submitted_ms": 1e400'),
           ["bundle.json:1:"])
bad_bundle("findings-not-a-list", {**good, "findings": {"findings": "x"}}, ["findings.findings", "invalid type"])
bad_bundle("finding-unknown-field", {**good, "findings": {"findings": [{"root_cause": "x", "wher": 1}]}},
           ["findings.findings[0]", "unknown field `wher`"])
bad_bundle("hint-negative-index", {**good, "hints": [{"index": -1, "cost": 0}]}, ["hints[0].index"])
bad_bundle("evidence-wrong-shape", {**good, "evidence": [{"probe": 5}]}, ["evidence[0]"])
bad_bundle("attachments-not-strings", {**good, "attachments": {"a": 1}}, ["attachments.a"])
bad_bundle("not-utf8", b'{"format": "\xff\xfe"}', ["bundle.json", "not UTF-8"])
bad_bundle("escape-in-values", {**good, "format": "\u001b[2J\u001b]0;pwned\u0007", "candidate": "\u001b[31m"},
           ["format is not"], absent=["pwned"])
bad_bundle("is-dev-zero", None, ["/dev/zero", "larger than 67108864 bytes"],
           args=["grade", "/dev/zero", "--key", "{dir}/instructor.key", "--out", "{tmp}/results"])
bad_bundle("is-a-directory", None, ["is a directory"],
           args=["grade", "{dir}", "--key", "{dir}/instructor.key", "--out", "{tmp}/results"])
bad_bundle("missing", None, ["bundle.json", "No such file"])
bad_bundle("sealed-not-armored", {**good, "sealed": "hello"}, ["not sealed to this key, or it was altered"])
bad_bundle("sealed-to-another-key", {**good, "sealed": seal(facts(), OTHER_PUB_PATH)},
           ["not sealed to this key"])
bad_bundle("sealed-text-not-facts", {**good, "sealed": seal("SEALED-TEXT-do-not-echo")},
           ["the sealed facts are not a lab's", "invalid type: string"], absent=["SEALED-TEXT"])
bad_bundle("sealed-own-rubric", bundle({**facts(), "exercise": {"expected": [], "pass_mark": 0}}),
           ["unknown field `exercise`"])
bad_bundle("sealed-without-seed", bundle(without(facts(), "seed")), ["missing field `seed`"])
bad_bundle("sealed-for-another-candidate", {**good, "candidate": "mallory"},
           ["differ from what its lab sealed"])
bad_bundle("sealed-for-another-lab", {**good, "lab_id": "zzzzz"}, ["differ from what its lab sealed"])
bad_bundle("sealed-other-scenario-hash", {**good, "scenario_sha256": sha("other")},
           ["differ from what its lab sealed"])
bad_bundle("submitted-before-ready", {**good, "submitted_ms": 999_999}, ["submitted before its lab was ready"])
bad_bundle("scenario-not-named", good, ["not bundled nor named with --scenario", "--scenario FILE"],
           args=["grade", "{dir}/bundle.json", "--key", "{dir}/instructor.key", "--out", "{tmp}/results"])
own = LAB_SCENARIO.replace("link: {from: payments, to: ledger}", "link: {from: edge, to: checkout}")
bad_bundle("scenario-named-is-another-file", good, ["not bundled nor named", "the bundled `packet-loss` is a different file"],
           scenario=own)
bad_bundle("scenario-own-rubric", bundle(facts(scenario_sha256=sha(own))),
           ["not bundled nor named"])
bad_bundle("scenario-named-missing", good, ["nope.yaml"],
           args=["grade", "{dir}/bundle.json", "--key", "{dir}/instructor.key", "--scenario", "{dir}/nope.yaml", "--out", "{tmp}/r"])
broken = "apiVersion: sandbox/v1\nkind: Scenario\nmetadata: {id: packet-loss}\n"
bad_bundle("scenario-named-invalid", bundle(facts(scenario_sha256=sha(broken))),
           ["scenario.yaml is invalid", "refused"], scenario=broken)
bad_bundle("scenario-id-differs", bundle(facts(scenario_id="two-faults"), scenario_id="two-faults"),
           ["the sealed facts name scenario `two-faults`"])
bad_bundle("draw-forged", bundle(facts(params={"loss_pct": 50})), ["the sealed draw is not one"])
bad_bundle("draw-another-value-in-range", bundle(facts(params={"loss_pct": 15})), ["the sealed draw is not one"])
bad_bundle("draw-extra-param", bundle(facts(params={**DRAW, "delay_ms": 5})), ["the sealed draw is not one"])
bad_bundle("draw-missing-param", bundle(facts(params={})), ["the sealed draw is not one"])
bad_bundle("draw-value-as-text", bundle(facts(params={"loss_pct": "8"})), ["the sealed draw is not one"])
bad_bundle("draw-another-seed", bundle(facts(seed=8)), ["the sealed draw is not one"])
bad_bundle("hint-not-in-scenario", {**good, "hints": [{"index": 99, "cost": 0}]},
           ["it lists hint 100 but the scenario has 3"])
bad_bundle("hint-twice", {**good, "hints": [{"index": 0, "cost": 0}, {"index": 0, "cost": 0}]},
           ["it lists hint 1 twice"])

# ----------------------------------------------------------------------------- signed results
R = valid_result()


def bad_result(name, content, why=("INVALID",), pub=PUB, args=VERIFY_WITH_PUB, absent=()):
    files = {"instructor.pub": pub}
    if content is not None:
        files["result.json"] = content
    case("signed-results", name, args, stderr=["result.json" if content is not None else "", *why],
         files=files, absent=absent)


def edited(fn):
    r = json.loads(json.dumps(R))
    fn(r)
    return r


bad_result("added-field", edited(lambda r: r.update(note="approved")))
bad_result("added-field-in-grade", edited(lambda r: r["grade"].update(bonus=50)))
bad_result("added-field-in-an-item", edited(lambda r: r["grade"]["items"][0].update(override=True)))
bad_result("added-field-with-escapes", edited(lambda r: r.update(note="\u001b[2J\u001b]0;pwned\u0007")), absent=["pwned"])
bad_result("removed-self-reported", edited(lambda r: r.pop("self_reported")))
bad_result("removed-late", edited(lambda r: r["grade"].pop("late")))
bad_result("removed-an-item", edited(lambda r: r["grade"]["items"].pop()))
bad_result("changed-score", edited(lambda r: r["grade"].update(score=100, earned=100)))
bad_result("changed-passed", edited(lambda r: r["grade"].update(passed=False)))
bad_result("changed-candidate", edited(lambda r: r.update(candidate="mallory")))
bad_result("changed-self-reported-hints", edited(lambda r: r["self_reported"].update(hints=[0, 1, 2])))
bad_result("changed-submitted-time", edited(lambda r: r["self_reported"].update(submitted_ms=1_000_001)))
bad_result("changed-number-type", edited(lambda r: r["grade"].update(score=float(r["grade"]["score"]))))
bad_result("reordered-items", edited(lambda r: r["grade"]["items"].reverse()))
bad_result("duplicate-key-changes-value", json.dumps(R)[:-1] + ', "candidate": "mallory"}')
sig = R["signature"]
flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
bad_result("signature-one-character-changed", edited(lambda r: r.update(signature=flipped)))
bad_result("signature-missing", edited(lambda r: r.pop("signature")))
bad_result("signature-empty", edited(lambda r: r.update(signature="")))
bad_result("signature-not-base64", edited(lambda r: r.update(signature="!!!")))
bad_result("signature-too-short", edited(lambda r: r.update(signature=base64.b64encode(b"0123456789").decode())))
bad_result("signature-not-a-string", edited(lambda r: r.update(signature=123)))
bad_result("signed-by-another-key", R, pub=OTHER_PUB)
bad_result("old-format", edited(lambda r: r.update(format="sandbox-result/1")))
bad_result("not-json", "valid: alice scored 100/100", ["not valid JSON"])
bad_result("json-array", [R], ["not a JSON object"])
bad_result("json-string", '"INVALID-TEXT-do-not-echo"', ["not a JSON object"], absent=["do-not-echo"])
bad_result("empty", "", ["ends in the middle"])
bad_result("not-utf8", b'{"format": "\xff"}', ["not UTF-8"])
bad_result("deep-nesting", '{"a":' * 100000, ["not a sandbox signed result"])
bad_result("is-dev-zero", None, ["/dev/zero", "larger than"],
           args=["grade", "--verify", "/dev/zero", "--public", "{dir}/instructor.pub"])
bad_result("is-a-directory", None, ["is a directory"],
           args=["grade", "--verify", "{dir}", "--public", "{dir}/instructor.pub"])
bad_result("missing", None, ["result.json", "No such file"])

# ----------------------------------------------------------------------------------- findings
SUBMIT = ["submit", "{dir}/findings.yaml"]


def bad_findings(name, content, why, absent=(), args=SUBMIT, extra=None):
    files = {} if content is None else {"findings.yaml": content}
    files.update(extra or {})
    case("findings", name, args, stderr=why, absent=absent, files=files)


F = "findings:\n  - root_cause: packet-loss\n"
bad_findings("unknown-root-cause", "findings:\n  - root_cause: gremlins\n", ["findings.yaml:2:17", "findings[0].root_cause", "`gremlins` is not a known root cause"])
bad_findings("unknown-field", F + "    wher: {service: ledger}\n", ["findings.yaml:3:5", "unknown field `wher`"])
bad_findings("port-not-a-number", F + "    where: {port: eighty}\n", ["findings.yaml:3:19", "where.port", "expected a whole number"])
bad_findings("port-out-of-range", F + "    where: {port: 70000}\n", ["findings.yaml:3:19", "where.port"])
bad_findings("where-not-a-map", F + "    where: 5\n", ["findings.yaml:3:12", "where"])
bad_findings("findings-not-a-list", "findings: lots\n", ["findings.yaml:1:11", "findings"])
bad_findings("top-level-list", "- root_cause: packet-loss\n", ["findings.yaml:1:1"])
bad_findings("empty-file", "", ["findings.yaml:1:1"])
bad_findings("no-findings", "findings: []\n", ["findings.yaml:1:11", "expected at least one finding"])
bad_findings("missing-root-cause", "findings:\n  - where: {service: ledger}\n", ["findings.yaml:2:5", "root_cause"])
bad_findings("magnitude-a-list", F + "    magnitude: [1, 2]\n", ["findings.yaml:3:16", "magnitude"])
bad_findings("magnitude-not-a-quantity", F + "    magnitude: {percent: lots}\n", ["findings.yaml:3:26", "findings[0].magnitude.percent: expected a number"])
bad_findings("direction-unknown", F + "    where: {direction: sideways}\n", ["findings.yaml:3:24", "findings[0].where.direction: expected ingress"])
bad_findings("service-name-too-long", F + f"    where: {{service: {'x' * 100}}}\n", ["findings.yaml:3:22", "findings[0].where.service: longer than 64"])
bad_findings("too-many-findings", "findings:\n" + "  - root_cause: packet-loss\n" * 21, ["findings.yaml:2:3", "at most 20 findings"])
bad_findings("link-without-to", F + "    where: {link: {from: payments}}\n", ["findings.yaml:3", "missing field `to`"])
bad_findings("link-a-string", F + "    where: {link: payments-ledger}\n", ["findings.yaml:3:19", "where.link"])
bad_findings("notes-a-map", F + "    notes: {a: 1}\n", ["findings.yaml:3:12", "notes"])
bad_findings("attachments-a-string", F + "    attachments: flame.svg\n", ["findings.yaml:3:18", "attachments"])
bad_findings("not-utf8", b"findings:\n  - root_cause: \xff\xfe\n", ["findings.yaml:2:17", "not UTF-8"])
bad_findings("nul-byte", "findings:\n  - root_cause: \u0000\n", ["findings.yaml:2"])
bad_findings("is-dev-zero", None, ["/dev/zero", "may be at most"], args=["submit", "/dev/zero"])
bad_findings("is-a-directory", None, ["a directory"], args=["submit", "{dir}"])
bad_findings("missing", None, ["findings.yaml", "No such file"])
laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(9)) + "findings: *j\n"
bad_findings("billion-laughs", laughs, ["findings.yaml"])
bad_findings("deep-nesting", "findings: " + "[" * 20000, ["findings.yaml"])
bad_findings("tab-indentation", "findings:\n\t- root_cause: packet-loss\n", ["findings.yaml:2"])
bad_findings("duplicate-key", F + "    root_cause: blackhole\n", ["findings.yaml:3", "duplicate"])
bad_findings("two-documents", F + "---\n" + F, ["findings.yaml"])
bad_findings("a-key-file-instead", KEY, ["findings.yaml"], absent=[secret_line[:30], sign_secret.split()[1]])
bad_findings("a-bundle-instead", json.dumps(good), ["findings.yaml:1"], absent=["BEGIN AGE"])
bad_findings("escape-in-root-cause", 'findings:\n  - root_cause: "\\e[2J\\e]0;pwned\\a"\n', ["findings.yaml:2:17", "is not a known root cause"])
bad_findings("escape-in-field-name", 'findings:\n  - root_cause: packet-loss\n    "\\e[31mred": 1\n', ["findings.yaml:3:5", "unknown field"])
bad_findings("crlf-line-endings", "findings:\r\n  - root_cause: packet-loss\r\n    where: {port: eighty}\r\n", ["findings.yaml:3:19", "where.port"])
bad_findings("secret-in-a-value", F + "    where: {port: SECRET-do-not-echo}\n", ["where.port"], absent=["SECRET-do-not-echo"])

shutil.rmtree(WORK)
total = sum(len(os.listdir(os.path.join(HERE, g))) for g in GROUPS)
print(f"{total} cases in {', '.join(GROUPS)}")
