"""The gateway: a drop-in continuity proxy between the care software and the chain.

``RunningGateway`` assembles it (``runner.py``); ``app.py`` is the server, ``handler.py`` the
request path, ``upstreams.py`` the data centers, ``policy.py`` the continuity decisions.
"""
