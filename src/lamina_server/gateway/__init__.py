"""The S3-compatible gateway: the S3 protocol over Lamina repositories.

Path-style, under ``/s3`` on the server's port (and, with ``lamina server --s3-port``, at the
root of a port of its own): the bucket ``<org>.<repo>`` is a repository, and the key
``<ref>/<path>`` an object at ``head``, at a commit id, or in an open session
(``session-<id>``, the only place writes go). Requests are signed with SigV4 by an S3
credential (:mod:`.credentials`) that acts as the principal who made it, and every operation is
authorized by the API's own seam (:mod:`lamina_server.api.access`).

:mod:`.app` dispatches a request to its operation; :mod:`.signing` verifies signatures,
:mod:`.payload` reads request bodies (aws-chunked included), :mod:`.admission` authenticates
and authorizes, :mod:`.reads` and :mod:`.writes` serve the operations, :mod:`.s3_xml` writes and
reads S3's documents, :mod:`.s3_errors` answers errors as S3 does.
"""
