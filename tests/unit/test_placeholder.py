def test_import():
    import rootless.cli  # noqa
