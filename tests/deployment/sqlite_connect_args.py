"""Connection arguments for the deployment test's SQLite metadata database (``sql_alchemy_connect_args``)."""

CONNECT_ARGS = {"timeout": 30}
