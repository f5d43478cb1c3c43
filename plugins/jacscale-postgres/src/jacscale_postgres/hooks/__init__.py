"""The plugin's hooks, one module per entry point: each imports psycopg only once it is used.

Every jacscale process loads every installed plugin's entry points; these modules
import nothing heavier than the kernel, so an app that uses no PostgreSQL pays
nothing for this plugin at start-up.
"""
