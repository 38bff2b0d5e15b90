"""The local PostgreSQL server and database URLs: what serves the warehouse and Dagster's
instance when CARBON_DATABASE_URL is unset, apart from the warehouse layer that uses it.

embedded.py  the embedded PostgreSQL under {CARBON_DATA_DIR}/postgres, private to its owner;
             a loopback TCP port for tools on request (`carbon-assets db-url --tcp`)
acl.py       one OS user allowed to traverse a folder (an ACL entry), nobody else's rights changed
secrets.py   database URLs parsed before use; passwords masked in URLs and error messages
"""
