"""The web console: the admin API's actions as pages, for the people in the three groups.

Served by the admin API (same process, permissions and audit); plain server-rendered HTML
with a little vanilla JavaScript, in Norwegian (bokmål) and English; everything it needs
ships in this package (templates/, static/).
"""
