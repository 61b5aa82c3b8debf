"""Serve a WSGI application on a free 127.0.0.1 port, for one test.

Usage: python serve_wsgi.py MODULE:ATTRIBUTE [--serialize]

Prints "LISTENING <port>" once the socket is bound, then serves until its standard input
closes (the test harness holds the other end, so the server also ends if the test process
dies) or it is killed. --serialize handles one request at a time (moto's backends are not
thread-safe; see TESTING notes in docs/TESTING.md).
"""

import importlib
import sys
import threading

from werkzeug.serving import make_server


def load(target):
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    app = module
    for part in attribute.split("."):
        app = getattr(app, part)
    return app


def serialized(app):
    lock = threading.Lock()

    def locked_app(environ, start_response):
        with lock:
            return list(app(environ, start_response))

    return locked_app


def main():
    app = load(sys.argv[1])
    if "--serialize" in sys.argv[2:]:
        app = serialized(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(f"LISTENING {server.server_port}", flush=True)

    def stop_when_parent_goes():
        sys.stdin.read()
        server.shutdown()

    threading.Thread(target=stop_when_parent_goes, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
