"""pytest configuration shared by the test modules."""


def pytest_configure(config):
    # The interop tier (real sockets, real peers, subprocesses) is marked so
    # that it can be selected or left out: -m interop, -m "not interop".
    config.addinivalue_line("markers", "interop: real loopback sockets against peers nobody here wrote")
