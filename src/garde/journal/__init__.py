"""The durable journal: writes that may wait, kept until delivered exactly once, in order.

``base`` holds the seam every backend implements and the gateway uses; ``sqlite`` and
``postgres`` are the two backends.
"""
