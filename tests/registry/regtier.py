"""What the registry tier's conftest and tests share: the test credentials."""

USER, PASSWORD = "handcar", "s3cret-pa55"                 # the htpasswd registry's
TOKEN_USER, TOKEN_PASSWORD = "alice", "wonder-land-7"     # the token server's
