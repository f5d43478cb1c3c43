"""Built-in jacscale extensions.

`BUILTINS` is what the entry point `jacscale.builtins: jacscale` names: the
extension modules, registered on the kernel's plugin manager in this order
(pluggy calls the last registered first).
"""

BUILTINS: tuple[str, ...] = (
    "jacscale_ext.sqlite_store",
    "jacscale_ext.health",
    "jacscale_ext.docs",
    "jacscale_ext.local_storage",
    "jacscale_ext.auth.plugin",
    "jacscale_ext.webhooks",
    "jacscale_ext.websockets",
    "jacscale_ext.traverse",
    "jacscale_ext.access_log",
    "jacscale_ext.scheduler.plugin",
    "jacscale_ext.mailer",
    "jacscale_ext.auth.account_flows",
    "jacscale_ext.activity",
    "jacscale_ext.admin",
    "jacscale_ext.graph",
    "jacscale_ext.data_cli",
)
