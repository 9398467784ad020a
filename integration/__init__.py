"""Sandbank's reference integration: the merchant/ERP side of a B2B credit integration.

It talks to the provider over HTTP only and never imports `simulator`.
"""
