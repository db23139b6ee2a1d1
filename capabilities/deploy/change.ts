// The canonical change of a deploy (docs/authorization.md, "The change digest"), computed from the
// payload alone so that an agent can digest it without reading the cluster:
// - the image form: `{image, container}`, container as the payload names it, or null when the
//   payload leaves it to the operator ("the workload's only container"; the operator refuses the
//   task when the workload has more than one);
// - the manifest form: `{manifest}`, the manifest exactly as the task carries it (RFC 8785 makes
//   the order of its keys irrelevant; nothing is defaulted or normalized).

export type DeployChange = { image: unknown; container: unknown } | { manifest: unknown };

export function changeOf(payload: Record<string, unknown> | undefined): DeployChange {
  if (payload?.manifest !== undefined) return { manifest: payload.manifest };
  return { image: payload?.image, container: payload?.container ?? null };
}
