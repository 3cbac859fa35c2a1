"""What a data steward or a store operator runs: ``consentry steward …`` and ``consentry store …``.

``admin.steward_cmd`` (review, approve, reject, keys), ``admin.review`` and ``admin.review_page`` (the
steward's local review page), ``admin.store_cmd`` (serve, keygen, token, export, verify-log) and
``admin.access`` (the steward's key and the machine policy's store section). They run on the steward's
or operator's own machine, reach a store through ``kit.store_client``, may read the machine policy
(``vault.policy``) and call the store library; nothing here is imported by ``agent`` or ``store``.
"""
