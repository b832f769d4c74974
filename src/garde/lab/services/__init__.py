"""The simulated services, one module each; ``registry`` maps catalog ids to them.

Nothing is imported here, so that a service's helpers (``garde.lab.kmehr``) may use
``services.base`` without loading every service first.
"""
