// Command atb-submit submits one AgentTask to the ATB operator and waits for its outcome.
//
// The seed's Go example, made complete: it loads a kubeconfig (or the in-cluster config), creates
// the task in the target's namespace with the dynamic client, then watches it (list + watch, which
// survives dropped watches and expired resource versions) until the operator records a terminal
// phase. It prints the phase, the risk tier the broker computed and the reason.
//
// The identity it runs as (the kubeconfig's user, or in a pod its ServiceAccount) must be bound to
// --agent-id: the operator records who created the task and the broker denies requester_mismatch
// otherwise. With no other configuration, run as the ServiceAccount <sa> in namespace <ns> and use
// the agent id spiffe://<trust domain>/ns/<ns>/sa/<sa> (docs/agents.md, "What you need").
//
// Usage:
//
//	export ATB_POA_TOKEN=...   # never on the command line: argv is visible to every local user
//	atb-submit --agent-id spiffe://example.org/agent/planner --action scale \
//	    --target Deployment/production/web-frontend --payload '{"replicas":5}' [--name NAME]
//	    [--namespace NS] [--kubeconfig PATH] [--timeout 5m]
//
// With --print-change-digest it prints the digest of the task's change (what the token's
// con.change_sha256 must be; change.go) and exits, without a token or a cluster; a rollback also
// takes --template-hash HASH and, without a revision in its payload, --revision N; an update-config
// of a Secret, whose values are given by reference, takes --value-digest KEY=sha256:HEX per such key.
//
// With --plan it plans the change instead (no token), and with --await-approval NAME it waits while
// a task is AwaitingApproval (plan.go).
//
// It stops waiting at AwaitingApproval too (the broker's only objection is missing approvals).
//
// Exit codes: 0 Completed; 1 Denied or Failed; 3 AwaitingApproval; 2 anything else (bad arguments,
// admission rejected the task, API errors, timeout).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
)

// agentTaskGVR is the AgentTask resource (crds/agenttask.yaml).
var agentTaskGVR = schema.GroupVersionResource{Group: "atb.siemens.com", Version: "v1alpha1", Resource: "agenttasks"}

const (
	exitCompleted = 0
	exitRejected  = 1 // Denied or Failed
	exitError     = 2
	// exitAwaiting: the broker's only objection is missing approvals; the task waits for them.
	exitAwaiting = 3
)

type options struct {
	kubeconfig string
	namespace  string
	name       string
	agentID    string
	action     string
	target     string
	payload    string
	timeout    time.Duration
	// --print-change-digest and what a rollback's change needs besides the payload.
	printDigest     bool
	revision        int
	templateHash    string
	templateHashSet bool
	valueDigests    valueDigestFlag
	// --plan and --await-approval NAME (plan.go).
	plan          bool
	awaitApproval string
}

// valueDigestFlag is --value-digest KEY=sha256:<hex>, repeatable: the digest of each Secret value
// an update-config gives by reference.
type valueDigestFlag map[string]string

func (f *valueDigestFlag) String() string { return "" }

func (f *valueDigestFlag) Set(v string) error {
	i := strings.LastIndex(v, "=")
	if i < 1 || !digestPattern.MatchString(v[i+1:]) {
		return errors.New("must be <key>=sha256:<64 lowercase hex digits of the SHA-256 of the value's bytes>")
	}
	if *f == nil {
		*f = map[string]string{}
	}
	if _, dup := (*f)[v[:i]]; dup {
		return fmt.Errorf("key %q given twice", v[:i])
	}
	(*f)[v[:i]] = v[i+1:]
	return nil
}

// errorf reports an error with the token redacted (an API server message may quote the object).
type redactor struct{ secret string }

func (r redactor) clean(s string) string {
	if r.secret == "" {
		return s
	}
	return strings.ReplaceAll(s, r.secret, "[REDACTED]")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	token := os.Getenv("ATB_POA_TOKEN")
	red := redactor{secret: token}
	fail := func(format string, a ...any) int {
		fmt.Fprintln(stderr, "error: "+red.clean(fmt.Sprintf(format, a...)))
		return exitError
	}

	var o options
	fs := flag.NewFlagSet("atb-submit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "path to a kubeconfig (default: $KUBECONFIG, ~/.kube/config, then the in-cluster config)")
	fs.StringVar(&o.namespace, "namespace", "", "namespace of the AgentTask (default: the target's namespace)")
	fs.StringVar(&o.name, "name", "", "name of the AgentTask (default: generated from the action and target)")
	fs.StringVar(&o.agentID, "agent-id", os.Getenv("ATB_AGENT_ID"), "the agent's SPIFFE ID, the PoA token's subject (default: $ATB_AGENT_ID)")
	fs.StringVar(&o.action, "action", "", "scale, restart, update-config, deploy, rollback or patch")
	fs.StringVar(&o.target, "target", "", "the target as KIND/NAMESPACE/NAME, e.g. Deployment/production/web-frontend")
	fs.StringVar(&o.payload, "payload", "{}", "the action's payload as a JSON object, e.g. '{\"replicas\":5}'")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long to wait for a terminal phase")
	fs.BoolVar(&o.printDigest, "print-change-digest", false, "print the digest of the task's change (the token's con.change_sha256) and exit: no token, no cluster")
	fs.IntVar(&o.revision, "revision", 0, "rollback, with --print-change-digest: the revision it restores (default: the payload's)")
	fs.StringVar(&o.templateHash, "template-hash", "", "rollback, with --print-change-digest: the pod-template-hash of that revision's ReplicaSet or its ControllerRevision's hash (\"none\" if it has none)")
	fs.Var(&o.valueDigests, "value-digest", "update-config of a Secret, with --print-change-digest: KEY=sha256:<hex> for each data key given by reference, the SHA-256 of the source Secret's value (repeat for several keys)")
	fs.BoolVar(&o.plan, "plan", false, "create a Plan task instead (no token needed, nothing written) and print its plan: the change digest a token must carry, the risk tier, the approvals needed and a diff")
	fs.StringVar(&o.awaitApproval, "await-approval", "", "wait while the task `NAME` (in --namespace) is AwaitingApproval and print the phase it moves on to")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() > 0 {
		return fail("unexpected arguments %q (the token is read from $ATB_POA_TOKEN, never from the command line)", fs.Args())
	}
	if o.printDigest {
		fs.Visit(func(f *flag.Flag) { o.templateHashSet = o.templateHashSet || f.Name == "template-hash" })
		if err := printChangeDigest(o, stdout); err != nil {
			return fail("%v", err)
		}
		return exitCompleted
	}
	if o.plan || o.awaitApproval != "" {
		return runPlanOrAwait(o, stdout, red, fail)
	}
	if token == "" {
		return fail("ATB_POA_TOKEN is not set: export the agent's PoA token in the environment")
	}
	if o.agentID == "" || o.action == "" || o.target == "" {
		return fail("--agent-id (or $ATB_AGENT_ID), --action and --target are required")
	}
	parts := strings.Split(o.target, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return fail("--target must be KIND/NAMESPACE/NAME, got %q", o.target)
	}
	kind, targetNS, targetName := parts[0], parts[1], parts[2]
	if o.namespace == "" {
		o.namespace = targetNS
	}
	payload, err := parsePayload(o.payload)
	if err != nil {
		return fail("%v", err)
	}

	loading := clientcmd.NewDefaultClientConfigLoadingRules()
	loading.ExplicitPath = o.kubeconfig
	// Falls back to the in-cluster service account when no kubeconfig is found.
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loading, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return fail("loading the Kubernetes configuration: %v", err)
	}
	cfg.UserAgent = "atb-submit-go/0.1"
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fail("creating the Kubernetes client: %v", err)
	}
	tasks := client.Resource(agentTaskGVR).Namespace(o.namespace)

	metadata := map[string]any{"namespace": o.namespace}
	if o.name != "" {
		metadata["name"] = o.name
	} else {
		metadata["generateName"] = generateName(o.action, targetName)
	}
	task := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "atb.siemens.com/v1alpha1",
		"kind":       "AgentTask",
		"metadata":   metadata,
		"spec": map[string]any{
			"agentId":  o.agentID,
			"poaToken": token,
			"action":   o.action,
			"target":   map[string]any{"kind": kind, "name": targetName, "namespace": targetNS},
			"payload":  payload,
		},
	}}

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	created, err := tasks.Create(ctx, task, metav1.CreateOptions{FieldManager: "atb-submit"})
	if err != nil {
		var status apierrors.APIStatus
		if errors.As(err, &status) {
			return fail("the API server rejected the AgentTask in namespace %s: %s", o.namespace, status.Status().Message)
		}
		return fail("creating the AgentTask in namespace %s: %v", o.namespace, err)
	}
	name := created.GetName()
	fmt.Fprintf(stdout, "agenttask %s/%s created\n", o.namespace, name)

	// AwaitingApproval ends the agent's part for now: the approvers' turn (see --await-approval).
	u, err := waitFor(ctx, tasks, name, func(phase string) bool {
		return phase == "Completed" || phase == "Denied" || phase == "Failed" || phase == "AwaitingApproval"
	})
	if errors.Is(err, errTimedOut) {
		lastPhase := phaseOf(u)
		if lastPhase == "" {
			lastPhase = "(none yet)"
		}
		return fail("timed out after %s waiting for AgentTask %s/%s to finish (last phase: %s)", o.timeout, o.namespace, name, lastPhase)
	}
	if err != nil {
		if strings.HasSuffix(err.Error(), " was deleted") {
			return fail("AgentTask %s/%s was deleted before it finished", o.namespace, name)
		}
		return fail("watching AgentTask %s/%s: %v", o.namespace, name, err)
	}

	printResult(stdout, u, red)
	switch phaseOf(u) {
	case "Completed":
		return exitCompleted
	case "AwaitingApproval":
		return exitAwaiting
	}
	return exitRejected
}

// parsePayload is --payload: a JSON object.
func parsePayload(text string) (map[string]any, error) {
	var payload map[string]any
	if err := json.Unmarshal([]byte(text), &payload); err != nil || payload == nil {
		return nil, fmt.Errorf("--payload must be a JSON object: %v", err)
	}
	return payload, nil
}

// printResult prints a task's phase, risk tier, reason, message and request id (the token redacted).
func printResult(stdout io.Writer, u *unstructured.Unstructured, red redactor) {
	tier, _, _ := unstructured.NestedString(u.Object, "status", "atbResult", "riskTier")
	reason, _, _ := unstructured.NestedString(u.Object, "status", "atbResult", "reason")
	requestID, _, _ := unstructured.NestedString(u.Object, "status", "atbResult", "requestId")
	message, _, _ := unstructured.NestedString(u.Object, "status", "message")
	fmt.Fprintf(stdout, "phase: %s\n", phaseOf(u))
	fmt.Fprintf(stdout, "riskTier: %s\n", orDash(tier))
	fmt.Fprintf(stdout, "reason: %s\n", orDash(red.clean(reason)))
	fmt.Fprintf(stdout, "message: %s\n", orDash(red.clean(message)))
	fmt.Fprintf(stdout, "requestId: %s\n", orDash(requestID))
	if sentence, _, _ := unstructured.NestedString(u.Object, "status", "approvals", "sentence"); phaseOf(u) == "AwaitingApproval" && sentence != "" {
		fmt.Fprintf(stdout, "approvals: %s\n", red.clean(sentence))
	}
}

// generateName is the metadata.generateName prefix for a task: "<action>-<target>-", shortened to
// leave room for the API server's five-character suffix within a 63-character name.
func generateName(action, target string) string {
	prefix := strings.ToLower(action + "-" + target)
	if len(prefix) > 57 {
		prefix = strings.TrimRight(prefix[:57], "-.")
	}
	return prefix + "-"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
