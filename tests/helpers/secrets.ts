// Scans captured text (logs, events, statuses, metrics) for secrets: any of the given values, and
// any JWS-shaped string at all (a token that is not in the list is still a token). Returns the
// findings as short, already-redacted descriptions.
const JWS = /eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}/;

export function scanForSecrets(texts: string[], secrets: string[]): string[] {
  const findings: string[] = [];
  texts.forEach((text, i) => {
    for (const s of secrets) {
      if (s && text.includes(s)) findings.push(`text #${i} contains secret #${secrets.indexOf(s)}`);
      // The signature alone identifies a token as well as the whole.
      const sig = s.split(".")[2];
      if (sig && sig.length > 16 && text.includes(sig))
        findings.push(`text #${i} contains the signature of secret #${secrets.indexOf(s)}`);
    }
    const m = text.match(JWS);
    if (m) findings.push(`text #${i} contains a JWS-shaped string at ${m.index}`);
  });
  return findings;
}
