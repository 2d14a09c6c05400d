"""ipad-qc's built-in removal hooks: ``deflare``, ``demoire`` and ``deghost``.

They are registered in ipad-qc's ``pyproject.toml`` under the ``ipad_qc.removal_hooks``
entry-point group, exactly as a third party's hooks are, and use only the public plugin API
(:mod:`ipad_qc.routing.api`).
"""
