def pytest_configure(config):
    config.addinivalue_line("markers", "root: needs real root; scripts/test runs these as root")
