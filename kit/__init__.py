"""The kit both sides use: the store's HTTP client and the local-page kit.

``kit.store_client`` is the one client of the store's API (an agent ships with it, a steward reviews
with it, an auditor verifies the log with it); ``kit.web`` serves a page to one local user on 127.0.0.1
(server, CSRF and sessions, same-user peer check, Jinja2 templates with autoescaping) and ``kit.page_link`` hands that
page's address and token to the same user only. The employee's page (``agent.web``) and the steward's
review page (``admin.review_page``) are both built on it. The kit imports nothing but ``protocol``.
"""
