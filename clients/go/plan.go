// Plan and AwaitApproval: planning a change before asking for a token, and waiting while a task
// waits for its approvers.
//
//	atb-submit --plan --agent-id ID --action scale --target Deployment/production/web --payload '{"replicas":5}'
//	atb-submit --await-approval NAME --namespace NS [--timeout 10m]
//
// --plan creates an AgentTask with spec.mode Plan (no token: a Plan task needs none and writes
// nothing), waits for Planned and prints status.plan: the change digest a token for exactly this
// change must carry (con.change_sha256), the risk tier, the approvals the policy would need and a
// diff of the target. Exit 0 Planned; 2 otherwise (the task ended without a plan, e.g. Failed
// PlanNotAllowed, admission refused it, or the time was up).
//
// --await-approval waits while the task is AwaitingApproval (or not yet decided) and prints the
// phase it moves on to. Exit 0 Executing or Completed; 1 Denied or Failed; 2 timeout and errors.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	watchtools "k8s.io/client-go/tools/watch"
)

// undecided are the phases a task still waits in: before the decision and while it waits for approvals.
var undecided = map[string]bool{"": true, "Pending": true, "Processing": true, "AwaitingApproval": true}

// planDone are the phases a Plan task ends in.
var planDone = map[string]bool{"Planned": true, "Completed": true, "Denied": true, "Failed": true}

// errTimedOut: the time was up before the task got where the caller waits for.
var errTimedOut = errors.New("timed out")

func tasksClient(kubeconfig, namespace string) (dynamic.ResourceInterface, error) {
	loading := clientcmd.NewDefaultClientConfigLoadingRules()
	loading.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loading, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the Kubernetes configuration: %w", err)
	}
	cfg.UserAgent = "atb-submit-go/0.1"
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating the Kubernetes client: %w", err)
	}
	return client.Resource(agentTaskGVR).Namespace(namespace), nil
}

func phaseOf(u *unstructured.Unstructured) string {
	phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
	return phase
}

// waitFor follows the task (list + watch) until done(phase) holds. On ctx's expiry it returns the
// last version seen with errTimedOut.
func waitFor(ctx context.Context, tasks dynamic.ResourceInterface, name string, done func(string) bool) (*unstructured.Unstructured, error) {
	var last *unstructured.Unstructured
	selector := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, lo metav1.ListOptions) (runtime.Object, error) {
			lo.FieldSelector = selector
			return tasks.List(ctx, lo)
		},
		WatchFuncWithContext: func(ctx context.Context, lo metav1.ListOptions) (watch.Interface, error) {
			lo.FieldSelector = selector
			return tasks.Watch(ctx, lo)
		},
	}
	ev, err := watchtools.UntilWithSync(ctx, lw, &unstructured.Unstructured{}, nil, func(e watch.Event) (bool, error) {
		if e.Type == watch.Deleted {
			return false, fmt.Errorf("AgentTask %s was deleted", name)
		}
		u, ok := e.Object.(*unstructured.Unstructured)
		if !ok {
			return false, nil
		}
		last = u
		return done(phaseOf(u)), nil
	})
	if err != nil {
		if errors.Is(err, watchtools.ErrWatchClosed) || ctx.Err() != nil {
			if last == nil {
				last = &unstructured.Unstructured{Object: map[string]any{}}
			}
			return last, errTimedOut
		}
		return nil, err
	}
	return ev.Object.(*unstructured.Unstructured), nil
}

// Plan creates a Plan task for the change in the target's namespace and returns it once Planned
// (its status.plan). An error names the reason when it ended without a plan.
func Plan(ctx context.Context, tasks dynamic.ResourceInterface, name, agentID, action, kind, namespace, targetName string, payload map[string]any) (*unstructured.Unstructured, error) {
	metadata := map[string]any{"namespace": namespace}
	if name != "" {
		metadata["name"] = name
	} else {
		metadata["generateName"] = generateName("plan-"+action, targetName)
	}
	task := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "atb.siemens.com/v1alpha1",
		"kind":       "AgentTask",
		"metadata":   metadata,
		"spec": map[string]any{
			"agentId": agentID,
			"mode":    "Plan",
			"action":  action,
			"target":  map[string]any{"kind": kind, "name": targetName, "namespace": namespace},
			"payload": payload,
		},
	}}
	created, err := tasks.Create(ctx, task, metav1.CreateOptions{FieldManager: "atb-plan"})
	if err != nil {
		var status apierrors.APIStatus
		if errors.As(err, &status) {
			return nil, fmt.Errorf("the API server rejected the Plan task in namespace %s: %s", namespace, status.Status().Message)
		}
		return nil, fmt.Errorf("creating the Plan task in namespace %s: %w", namespace, err)
	}
	where := fmt.Sprintf("AgentTask %s/%s", namespace, created.GetName())
	u, err := waitFor(ctx, tasks, created.GetName(), func(p string) bool { return planDone[p] })
	if errors.Is(err, errTimedOut) {
		return nil, fmt.Errorf("timed out waiting for the plan of %s (last phase: %s)", where, orDash(phaseOf(u)))
	}
	if err != nil {
		return nil, fmt.Errorf("watching %s: %w", where, err)
	}
	plan, found, _ := unstructured.NestedMap(u.Object, "status", "plan")
	if phaseOf(u) != "Planned" || !found || plan == nil {
		message, _, _ := unstructured.NestedString(u.Object, "status", "message")
		return nil, fmt.Errorf("%s ended %s without a plan (%s): %s", where, phaseOf(u), falseReason(u), orDash(message))
	}
	return u, nil
}

// AwaitApproval waits while the task is AwaitingApproval (or not yet decided) and returns it once
// it has moved on (Executing or a terminal phase); timedOut when ctx expired first.
func AwaitApproval(ctx context.Context, tasks dynamic.ResourceInterface, name string) (u *unstructured.Unstructured, timedOut bool, err error) {
	u, err = waitFor(ctx, tasks, name, func(p string) bool { return !undecided[p] })
	if errors.Is(err, errTimedOut) {
		return u, true, nil
	}
	return u, false, err
}

func falseReason(u *unstructured.Unstructured) string {
	conditions, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conditions {
		m, ok := c.(map[string]any)
		if ok && m["status"] == "False" {
			if r, ok := m["reason"].(string); ok {
				return r
			}
		}
	}
	return "-"
}

func printPlan(stdout io.Writer, u *unstructured.Unstructured) {
	str := func(path ...string) string {
		s, _, _ := unstructured.NestedString(u.Object, append([]string{"status", "plan"}, path...)...)
		return s
	}
	count, _, _ := unstructured.NestedInt64(u.Object, "status", "plan", "approvalsRequired", "count")
	roles, _, _ := unstructured.NestedStringSlice(u.Object, "status", "plan", "approvalsRequired", "roles")
	truncated, _, _ := unstructured.NestedBool(u.Object, "status", "plan", "diffTruncated")
	rolesText := ""
	if len(roles) > 0 {
		rolesText = " (" + strings.Join(roles, ", ") + ")"
	}
	fmt.Fprintf(stdout, "agenttask %s/%s planned\n", u.GetNamespace(), u.GetName())
	fmt.Fprintf(stdout, "phase: %s\n", phaseOf(u))
	fmt.Fprintf(stdout, "changeSha256: %s\n", orDash(str("changeSha256")))
	fmt.Fprintf(stdout, "riskTier: %s\n", orDash(str("riskTier")))
	fmt.Fprintf(stdout, "approvalsRequired: %d%s: %s\n", count, rolesText, orDash(str("approvalsRequired", "sentence")))
	fmt.Fprintf(stdout, "diffTruncated: %t\n", truncated)
	fmt.Fprintf(stdout, "diff:\n%s\n", str("diff"))
}

// runPlanOrAwait is --plan and --await-approval.
func runPlanOrAwait(o options, stdout io.Writer, red redactor, fail func(string, ...any) int) int {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	if o.plan {
		if o.agentID == "" || o.action == "" || o.target == "" {
			return fail("--plan needs --agent-id (or $ATB_AGENT_ID), --action and --target")
		}
		parts := strings.Split(o.target, "/")
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			return fail("--target must be KIND/NAMESPACE/NAME, got %q", o.target)
		}
		payload, err := parsePayload(o.payload)
		if err != nil {
			return fail("%v", err)
		}
		tasks, err := tasksClient(o.kubeconfig, parts[1])
		if err != nil {
			return fail("%v", err)
		}
		u, err := Plan(ctx, tasks, o.name, o.agentID, o.action, parts[0], parts[1], parts[2], payload)
		if err != nil {
			return fail("%v", err)
		}
		printPlan(stdout, u)
		return exitCompleted
	}
	if o.namespace == "" {
		return fail("--await-approval needs --namespace (the task's namespace)")
	}
	tasks, err := tasksClient(o.kubeconfig, o.namespace)
	if err != nil {
		return fail("%v", err)
	}
	u, timedOut, err := AwaitApproval(ctx, tasks, o.awaitApproval)
	if err != nil {
		return fail("watching AgentTask %s/%s: %v", o.namespace, o.awaitApproval, err)
	}
	if timedOut {
		return fail("timed out after %s: AgentTask %s/%s is still %s", o.timeout, o.namespace, o.awaitApproval, orDash(phaseOf(u)))
	}
	printResult(stdout, u, red)
	if p := phaseOf(u); p == "Denied" || p == "Failed" {
		return exitRejected
	}
	return exitCompleted
}
