// e2e tests wait on real controllers and processes: minutes, not jest's default 5 s.
jest.setTimeout(300_000);
