"""Compatibility names for programs written for jac-scale.

Seed programs import `from jac_scale.lib { kvstore }` and
`from jac_scale.factories.storage_factory { StorageFactory }`; these modules
keep those imports working on jacscale. New code can use them as well.
"""
