"""
One port, several processes, without the websocket plugin:

    twistd -ny examples/workers.tac

The twistd process (the parent) binds WS_LISTEN (default tcp:8080) once,
then runs WS_WORKERS (default 2) copies of this same file under twistd as
its children; each worker adopts the socket, the kernel spreads the
connections, and the parent restarts a worker that dies.  Ctrl-C or
SIGTERM stops the workers (their clients get 1001) and then the parent.

Try it: python -m websockets ws://localhost:8080/ from two terminals and
see which worker echoes.  (twistd websocket --workers N does the same for
the ready-made server.)
"""

import os
import sys

from twisted.application import service

from twisted_ws import WebSocketProtocol
from twisted_ws.twistd import ServiceFactory, WebSocketService
from twisted_ws.twistd.worker import WorkerLifeline, inheritedEndpoints, workerId
from twisted_ws.twistd.workers import WorkerPool

LISTEN = os.environ.get("WS_LISTEN", "tcp:8080")
WORKERS = int(os.environ.get("WS_WORKERS", "2"))


class Echo(WebSocketProtocol):
    def connectionMade(self):
        self.sendMessage(f"hello from worker {workerId()} (pid {os.getpid()})")

    def messageReceived(self, message):
        self.sendMessage(message)


application = service.Application("twisted_ws workers")

if workerId() is None:
    # The parent: this file again, under twistd, as each worker.  The
    # worker logs one JSON line per event to its stdout; the parent logs
    # them as "worker N: ...".
    command = [
        sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
        "-n", "--pidfile=", "--logger", "twisted_ws.twistd.worker.workerLogObserver",
        "-y", os.path.abspath(__file__),
    ]
    WorkerPool(command, WORKERS, listen=[LISTEN]).setServiceParent(application)
else:
    # A worker: the connections are tracked, so that stopping closes them
    # with 1001 (within 5 s) before the process exits.
    top = WebSocketService(stopTimeout=5.0)
    top.workerId = workerId()
    factory = ServiceFactory(Echo, top)
    for endpoint in inheritedEndpoints():
        top.listen(endpoint, factory, lambda port: f"ws://{port.getHost().host}:{port.getHost().port}/")
    top.setServiceParent(application)
    # Stop when the parent is gone; SIGTERM from the parent stops us once.
    WorkerLifeline().setServiceParent(application)
