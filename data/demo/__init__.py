"""The demo city: 鼓楼区 (Gulou, Fuzhou) from real Vonng/adcode data, with a synthetic roster.

``load.load_demo`` builds and writes it; ``city.build_city`` builds it without a database.
"""
