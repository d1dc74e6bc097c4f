"""econe's Prometheus metrics (prometheus_client), and the application that serves them beside a health answer
(served by the edge, as the EC2 port is: server.py).

Each server has a registry of its own, not prometheus_client's global one: a process (a test) may run
several. Every label value comes from a bounded set: actions from econe's table (any other name a client
sends is ``unknown``), HTTP status codes, the oned methods econe's code calls, and ``AUTH_REASONS``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

UNKNOWN = "unknown"  # the action label of a request whose Action is not econe's (or that has none)
# why a request was not authenticated: no signature; a signature econe cannot read (its parameters,
# algorithm or credential scope); a time outside the allowed skew; an access key no user has; a disabled
# user; a signature that does not match; a client certificate DN that names no (single, enabled) user
AUTH_REASONS = ("missing", "malformed", "expired", "unknown_key", "disabled", "signature", "x509")
# seconds: prometheus_client's default buckets, and longer ones for uploads and requests that wait on oned
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.stopping = False  # the server is finishing its requests in flight: /health answers 503
        self.requests = Counter(
            "econe_requests",
            "EC2 requests answered, by action and HTTP status",
            ["action", "status"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "econe_request_duration_seconds",
            "Time from a request's dispatch to its answer, by action",
            ["action"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.oned_call_duration = Histogram(
            "econe_oned_call_duration_seconds",
            "Time of an XML-RPC call to oned, by method",
            ["method"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "econe_auth_failures",
            "Requests refused before any work because they were not authenticated, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.uploads_in_flight = Gauge(
            "econe_uploads_in_flight",
            "UploadImage requests whose file is arriving or being registered",
            registry=self.registry,
        )
        for reason in AUTH_REASONS:  # every reason is scraped from the start, at 0
            self.auth_failures.labels(reason)

    def request(self, action: str, status: int, seconds: float | None = None) -> None:
        """A request answered: *action* already one of econe's or UNKNOWN; *seconds* where it was timed."""
        self.requests.labels(action, str(status)).inc()
        if seconds is not None:
            self.request_duration.labels(action).observe(seconds)

    def oned_call(self, method: str):
        """A context manager that times one call of *method* to oned (also one that fails)."""
        return self.oned_call_duration.labels(method).time()


# ---------------------------------------------------------------- the metrics port


def health_app(metrics: Metrics):
    """The WSGI application of the metrics port: ``GET /metrics`` (Prometheus' text format, or
    OpenMetrics as the scraper asks) and ``GET /health`` (``ok``; 503 while the server stops). It
    calls nothing: a health check costs oned no call. Anything else is 404: no EC2 request here."""
    scrape = make_wsgi_app(metrics.registry)

    def app(environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if method not in ("GET", "HEAD"):
            return _text(start_response, "405 Method Not Allowed", "GET or HEAD\n", [("Allow", "GET, HEAD")])
        if path == "/metrics":
            return scrape(environ, start_response)
        if path == "/health":
            if metrics.stopping:
                return _text(start_response, "503 Service Unavailable", "stopping\n")
            return _text(start_response, "200 OK", "ok\n")
        return _text(start_response, "404 Not Found", "not found: this port serves /metrics and /health\n")

    return app


def _text(start_response, status: str, text: str, headers=()) -> list[bytes]:
    body = text.encode()
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *headers]
    )
    return [body]
