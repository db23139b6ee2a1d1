// The change digest a PoA binds: con.change_sha256 (docs/authorization.md, "The change digest").
//
//	digest = "sha256:" + hex(SHA-256(UTF-8 of the RFC 8785 (JCS) canonical JSON of the change))
//
// where the change is the task's canonical change, computed from its action, its target's kind and
// its payload exactly as the operator computes it (capabilities/change.ts): scale {replicas};
// restart {restart: true}; update-config {data: {key: valueDigest(value)}, remove: [keys]}, a Secret's
// value given by reference ({valueFrom: {secretKeyRef: {name, key}}}) as the digest of the source
// Secret's value, which --value-digest KEY=sha256:<hex> gives; deploy
// {image, container|null} or {manifest}; rollback {revision, template_hash}; patch {patch: [ops]},
// on a ConfigMap each value under /data or /binaryData (or of the whole object) as its digest.
//
// RFC 8785 for the JSON a change holds: object keys sorted by UTF-16 code units, strings escaped as
// ECMAScript's JSON.stringify does (U+2028 and U+2029 stay as they are, unlike encoding/json), and
// numbers, which encoding/json decodes as float64 as a JavaScript parser does, printed as ECMAScript
// prints them. Not supported: a lone UTF-16 surrogate in a string (encoding/json turns it into
// U+FFFD, so such a change would digest differently here than in TypeScript).
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
)

const digestPrefix = "sha256:"

// errNoChange: the action has no canonical change.
var errNoChange = errors.New("no canonical change")

// canonicalJSON writes the RFC 8785 form of a value decoded by encoding/json (or built of the same
// types: nil, bool, float64, string, []any, map[string]any).
func canonicalJSON(v any) (string, error) {
	var b strings.Builder
	if err := writeCanonical(&b, v, 0); err != nil {
		return "", err
	}
	return b.String(), nil
}

func writeCanonical(b *strings.Builder, v any, depth int) error {
	if depth > 64 {
		return errors.New("change: nested deeper than 64 levels")
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case float64:
		s, err := esNumber(x)
		if err != nil {
			return err
		}
		b.WriteString(s)
	case int:
		s, err := esNumber(float64(x))
		if err != nil {
			return err
		}
		b.WriteString(s)
	case string:
		writeString(b, x)
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeCanonical(b, e, depth+1); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]any:
		return writeObject(b, x, depth)
	default:
		return fmt.Errorf("change: a %T has no JSON form", v)
	}
	return nil
}

func writeObject(b *strings.Builder, m map[string]any, depth int) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return lessUTF16(keys[i], keys[j]) })
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		writeString(b, k)
		b.WriteByte(':')
		if err := writeCanonical(b, m[k], depth+1); err != nil {
			return err
		}
	}
	b.WriteByte('}')
	return nil
}

// lessUTF16 orders strings by their UTF-16 code units (RFC 8785 section 3.2.3).
func lessUTF16(a, b string) bool {
	ua, ub := utf16.Encode([]rune(a)), utf16.Encode([]rune(b))
	for i := 0; i < len(ua) && i < len(ub); i++ {
		if ua[i] != ub[i] {
			return ua[i] < ub[i]
		}
	}
	return len(ua) < len(ub)
}

func writeString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 {
				fmt.Fprintf(b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// esNumber is ECMAScript's Number::toString for a finite double (RFC 8785 section 3.2.2.3).
func esNumber(x float64) (string, error) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "", fmt.Errorf("change: %v has no JSON form", x)
	}
	if x == 0 {
		return "0", nil
	}
	if x < 0 {
		s, err := esNumber(-x)
		return "-" + s, err
	}
	// Shortest digits that round-trip, as d.ddde±x: the digits and the decimal point's position.
	mantissa, exp, _ := strings.Cut(strconv.FormatFloat(x, 'e', -1, 64), "e")
	e, _ := strconv.Atoi(exp)
	digits := strings.TrimRight(strings.Replace(mantissa, ".", "", 1), "0")
	if digits == "" {
		digits = "0"
	}
	k, n := len(digits), e+1
	switch {
	case k <= n && n <= 21:
		return digits + strings.Repeat("0", n-k), nil
	case 0 < n && n <= 21:
		return digits[:n] + "." + digits[n:], nil
	case -6 < n && n <= 0:
		return "0." + strings.Repeat("0", -n) + digits, nil
	}
	head := digits
	if k > 1 {
		head = digits[:1] + "." + digits[1:]
	}
	sign := "+"
	if n-1 < 0 {
		sign = "-"
	}
	return fmt.Sprintf("%se%s%d", head, sign, abs(n-1)), nil
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// changeDigest is sha256:<hex> of the canonical JSON of a change.
func changeDigest(change any) (string, error) {
	s, err := canonicalJSON(change)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(s))
	return digestPrefix + hex.EncodeToString(sum[:]), nil
}

// valueDigest is sha256:<hex> of one value's UTF-8 bytes: how a config value enters a change.
func valueDigest(v string) string {
	sum := sha256.Sum256([]byte(v))
	return digestPrefix + hex.EncodeToString(sum[:])
}

// changeResolution is what a change needs beyond the payload: a rollback's revision and template
// hash, and the digests of the Secret values an update-config gives by reference.
type changeResolution struct {
	revision     int // 0: the payload's
	templateHash *string
	hashGiven    bool // false: no template hash given (an error for a rollback)
	// valueDigests: sha256:<hex> of each referenced value, by data key (--value-digest).
	valueDigests map[string]string
}

// canonicalChange is the task's canonical change (capabilities/change.ts).
func canonicalChange(action, kind string, payload map[string]any, r changeResolution) (any, error) {
	switch action {
	case "scale":
		replicas, ok := payload["replicas"]
		if !ok {
			return nil, errors.New("scale: the payload has no replicas")
		}
		return map[string]any{"replicas": replicas}, nil
	case "restart":
		return map[string]any{"restart": true}, nil
	case "update-config":
		return updateConfigChange(payload, r.valueDigests)
	case "deploy":
		if m, ok := payload["manifest"]; ok {
			return map[string]any{"manifest": m}, nil
		}
		image, ok := payload["image"]
		if !ok {
			return nil, errors.New("deploy: the payload has neither image nor manifest")
		}
		return map[string]any{"image": image, "container": payload["container"]}, nil
	case "rollback":
		return rollbackChange(payload, r)
	case "patch":
		return patchChange(kind, payload)
	}
	return nil, fmt.Errorf("%w for action %q", errNoChange, action)
}

var digestPattern = regexp.MustCompile(`\Asha256:[0-9a-f]{64}\z`)

// secretKeyRef is the {valueFrom: {secretKeyRef: {name, key}}} a data value holds, if it does.
func secretKeyRef(v any) (name, key string, ok bool) {
	m, _ := v.(map[string]any)
	from, _ := m["valueFrom"].(map[string]any)
	ref, _ := from["secretKeyRef"].(map[string]any)
	name, okName := ref["name"].(string)
	key, okKey := ref["key"].(string)
	return name, key, okName && okKey
}

func referencedDigest(k string, v any, valueDigests map[string]string) (string, error) {
	name, key, ok := secretKeyRef(v)
	if !ok {
		return "", fmt.Errorf("update-config: the value of %q is neither a string nor a secretKeyRef", k)
	}
	d, given := valueDigests[k]
	if !given {
		return "", fmt.Errorf("update-config: the value of %q is key %q of Secret %q; its change needs that value's digest, sha256:<hex of its bytes> (--value-digest %s=sha256:...)", k, key, name, k)
	}
	if !digestPattern.MatchString(d) {
		return "", fmt.Errorf("update-config: the value digest of %q must be sha256:<64 lowercase hex digits>", k)
	}
	return d, nil
}

func updateConfigChange(payload map[string]any, valueDigests map[string]string) (any, error) {
	digests := map[string]any{}
	data, _ := payload["data"].(map[string]any)
	stray := []string{}
	for k := range valueDigests {
		if _, isString := data[k].(string); data[k] == nil || isString {
			stray = append(stray, strconv.Quote(k))
		}
	}
	if len(stray) > 0 {
		sort.Strings(stray)
		return nil, fmt.Errorf("update-config: value digests are for references only; the payload's data has no reference named %s", strings.Join(stray, ", "))
	}
	for k, v := range data {
		if s, ok := v.(string); ok {
			digests[k] = valueDigest(s)
			continue
		}
		d, err := referencedDigest(k, v, valueDigests)
		if err != nil {
			return nil, err
		}
		digests[k] = d
	}
	remove := []any{}
	if list, ok := payload["remove"].([]any); ok {
		remove = list
	}
	return map[string]any{"data": digests, "remove": remove}, nil
}

func rollbackChange(payload map[string]any, r changeResolution) (any, error) {
	revision := float64(r.revision)
	if r.revision == 0 {
		n, ok := payload["revision"].(float64)
		if !ok || n < 1 || n != math.Trunc(n) {
			return nil, errors.New("rollback: the revision to restore is needed (the payload's revision, or --revision)")
		}
		revision = n
	}
	if !r.hashGiven {
		return nil, errors.New("rollback: the template hash of the revision to restore is needed (--template-hash)")
	}
	var hash any
	if r.templateHash != nil {
		hash = *r.templateHash
	}
	return map[string]any{"revision": revision, "template_hash": hash}, nil
}

// holdsConfigValue says whether an operation's value is ConfigMap content (its path's first token).
func holdsConfigValue(kind string, path any) bool {
	if kind != "ConfigMap" {
		return false
	}
	p, ok := path.(string)
	if !ok || p == "" || !strings.HasPrefix(p, "/") {
		return true
	}
	first, _, _ := strings.Cut(p[1:], "/")
	return first == "data" || first == "binaryData"
}

func patchChange(kind string, payload map[string]any) (any, error) {
	raw := payload["patch"]
	if s, ok := raw.(string); ok {
		var parsed any
		if err := json.Unmarshal([]byte(s), &parsed); err != nil {
			return nil, fmt.Errorf("patch: the payload's patch string is not JSON: %v", err)
		}
		raw = parsed
	}
	ops, ok := raw.([]any)
	if !ok {
		return nil, errors.New("patch: the payload's patch is not an array of operations")
	}
	out := make([]any, 0, len(ops))
	for _, o := range ops {
		op, ok := o.(map[string]any)
		if !ok {
			return nil, errors.New("patch: an operation is not an object")
		}
		if v, has := op["value"]; has && holdsConfigValue(kind, op["path"]) {
			copied := make(map[string]any, len(op))
			for k, x := range op {
				copied[k] = x
			}
			if s, isString := v.(string); isString {
				copied["value"] = valueDigest(s)
			} else {
				d, err := changeDigest(v)
				if err != nil {
					return nil, err
				}
				copied["value"] = d
			}
			op = copied
		}
		out = append(out, op)
	}
	return map[string]any{"patch": out}, nil
}

// taskChangeDigest is sha256:<hex> of the task's canonical change: its token's con.change_sha256.
func taskChangeDigest(action, kind string, payload map[string]any, r changeResolution) (string, error) {
	change, err := canonicalChange(action, kind, payload, r)
	if err != nil {
		return "", err
	}
	return changeDigest(change)
}

// printChangeDigest is --print-change-digest: the digest of the task's change, without a token or a
// cluster (rollback: --revision and --template-hash say what the history holds).
func printChangeDigest(o options, stdout io.Writer) error {
	parts := strings.Split(o.target, "/")
	if o.action == "" || len(parts) != 3 || parts[0] == "" {
		return errors.New("--print-change-digest needs --action and --target KIND/NAMESPACE/NAME")
	}
	var payload map[string]any
	if err := json.Unmarshal([]byte(o.payload), &payload); err != nil || payload == nil {
		return fmt.Errorf("--payload must be a JSON object: %v", err)
	}
	r := changeResolution{revision: o.revision, hashGiven: o.templateHashSet, valueDigests: o.valueDigests}
	if o.templateHashSet && o.templateHash != "none" {
		r.templateHash = &o.templateHash
	}
	digest, err := taskChangeDigest(o.action, parts[0], payload, r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, digest)
	return err
}
