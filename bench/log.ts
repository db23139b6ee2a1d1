// The benchmark's progress lines on stdout, stamped with the time of day (UTC).
export const log = (s: string): void => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}`);
