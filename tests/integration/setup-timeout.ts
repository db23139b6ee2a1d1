// Integration tests start real TLS servers, OPA and `pepr build`: give them a minute or more.
jest.setTimeout(300_000);
