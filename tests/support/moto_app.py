"""moto's server (every AWS service on one endpoint), with a count of requests per AWS action.

Served by serve_wsgi.py with --serialize (moto is not atomic under concurrency):

    python serve_wsgi.py moto_app:app --serialize

The action of a request is its X-Amz-Target header (JSON protocols, e.g.
"secretsmanager.GetSecretValue", "DynamoDB_20120810.PutItem", "AmazonSQS.SendMessage"),
else its "Action" parameter (query protocol, e.g. SNS "Publish"), from the query string or
the form body. Two extra routes:

    GET  /__counts        -> {"<action>": n, ...}
    POST /__counts/reset  -> zeroes the counts
"""

import io
import json
import threading
from urllib.parse import parse_qs

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app


def _read_body(environ):
    """Reads the whole request body and puts it back so that moto can read it again."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = environ.get("CONTENT_LENGTH") or ""
    if length.strip():
        try:
            body = stream.read(int(length))
        except ValueError:
            body = b""
    elif environ.get("wsgi.input_terminated"):
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def _action(environ):
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if query.get("Action"):
        return query["Action"][0]
    content_type = environ.get("CONTENT_TYPE", "")
    if environ.get("REQUEST_METHOD") == "POST" and content_type.startswith(
        "application/x-www-form-urlencoded"
    ):
        body = _read_body(environ)
        form = parse_qs(body.decode("utf-8", "replace"))
        if form.get("Action"):
            return form["Action"][0]
    return None


class CountingApp:
    def __init__(self, app):
        self.app = app
        self.counts = {}
        self.lock = threading.Lock()

    def _json(self, start_response, value):
        body = json.dumps(value).encode()
        start_response(
            "200 OK",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/__counts" and method == "GET":
            with self.lock:
                return self._json(start_response, dict(self.counts))
        if path == "/__counts/reset" and method == "POST":
            _read_body(environ)
            with self.lock:
                self.counts.clear()
            return self._json(start_response, {})
        action = _action(environ)
        if action:
            with self.lock:
                self.counts[action] = self.counts.get(action, 0) + 1
        return self.app(environ, start_response)


app = CountingApp(DomainDispatcherApplication(create_backend_app))
