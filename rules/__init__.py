"""Rules: small modules that read the store and return findings a team can act on.

The framework lives in a few modules (``contract``, ``registry``, ``config``, ``schema``,
``runner``); every other module in this package that defines ``RULE`` and ``evaluate`` is a
rule and is found automatically. Third-party rules register through the ``costaudit.rules``
entry-point group. See ``contract`` for what a rule module must provide.
"""
