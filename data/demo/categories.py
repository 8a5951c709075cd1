"""The default incident taxonomy of the demo city.

Chinese digital urban management (数字化城市管理, GB/T 30428.2) sorts every matter
into 部件 (*components*: a fixed object that is damaged or missing, such as a
manhole cover or a street lamp) and 事件 (*events*: something that happens, such
as exposed rubbish or street vending), each in classes (大类) and items (小类).
The codes here follow that structure, simplified: ``C`` + class + item for
components, ``E`` + class + item for events (they are not the standard's own
codes). ``sla_hours`` is the time allowed to deal with a matter (处置时限);
``department`` the office a matter is dispatched to.
"""

from __future__ import annotations

from geo.store.roster_write import CategoryRecord

_C, _E = "component", "event"

#: (code, 中文名, English name, kind, department, SLA hours)
_ROWS: tuple[tuple[str, str, str, str, str, float], ...] = (
    # 部件 1 公用设施 (public utilities)
    ("C0101", "上水井盖", "Water supply manhole cover", _C, "自来水公司", 4),
    ("C0102", "污水井盖", "Sewer manhole cover", _C, "排水管理处", 4),
    ("C0103", "雨水箅子", "Storm drain grate", _C, "排水管理处", 24),
    ("C0104", "路灯", "Street lamp", _C, "城市照明管理处", 48),
    ("C0105", "电力设施", "Power installation", _C, "供电公司", 24),
    ("C0106", "消防栓", "Fire hydrant", _C, "消防救援大队", 24),
    # 部件 2 道路交通 (roads and traffic)
    ("C0201", "交通信号灯", "Traffic signal", _C, "交警大队", 4),
    ("C0202", "交通标志牌", "Traffic sign", _C, "交警大队", 48),
    ("C0203", "道路护栏", "Road guardrail", _C, "市政工程处", 48),
    ("C0204", "公交站亭", "Bus shelter", _C, "公交集团", 72),
    # 部件 3 市容环境 (city appearance)
    ("C0301", "公共厕所", "Public toilet", _C, "环卫处", 24),
    ("C0302", "垃圾箱", "Litter bin", _C, "环卫处", 24),
    ("C0303", "垃圾收集点", "Waste collection point", _C, "环卫处", 24),
    # 部件 4 园林绿化 (parks and greenery)
    ("C0401", "行道树", "Street tree", _C, "园林中心", 72),
    ("C0402", "绿地", "Green space", _C, "园林中心", 72),
    # 部件 6 其他设施 (other installations)
    ("C0601", "监控电子眼", "Surveillance camera", _C, "公安分局", 48),
    # 事件 1 市容环境 (city appearance)
    ("E0101", "暴露垃圾", "Exposed rubbish", _E, "环卫处", 4),
    ("E0102", "积存垃圾渣土", "Piled rubbish or spoil", _E, "环卫处", 24),
    ("E0103", "道路不洁", "Dirty road", _E, "环卫处", 8),
    ("E0104", "污水外溢", "Sewage overflow", _E, "排水管理处", 4),
    # 事件 2 宣传广告 (advertising)
    ("E0201", "违规张贴小广告", "Illegal small posters", _E, "城管执法中队", 24),
    ("E0202", "违规户外广告", "Illegal outdoor advertising", _E, "城管执法中队", 72),
    # 事件 3 施工管理 (construction)
    ("E0301", "施工扰民", "Construction nuisance", _E, "住建局", 24),
    ("E0302", "道路破损", "Damaged road surface", _E, "市政工程处", 48),
    # 事件 4 突发事件 (emergencies)
    ("E0401", "路面塌陷", "Road collapse", _E, "市政工程处", 2),
    ("E0402", "火灾隐患", "Fire hazard", _E, "消防救援大队", 2),
    ("E0403", "道路积水", "Waterlogged road", _E, "排水管理处", 4),
    # 事件 5 街面秩序 (street order)
    ("E0501", "占道经营", "Street vending on the roadway", _E, "城管执法中队", 2),
    ("E0502", "违规停放车辆", "Illegal parking", _E, "交警大队", 2),
    ("E0503", "无照经营游商", "Unlicensed hawker", _E, "市场监管所", 4),
    ("E0504", "店外经营", "Trading outside the shop", _E, "城管执法中队", 8),
    # 事件 6 其他事件 (grid governance: people and safety)
    ("E0601", "邻里纠纷", "Neighbour dispute", _E, "社区居委会", 24),
    ("E0602", "治安隐患", "Public security risk", _E, "派出所", 2),
    ("E0603", "噪声扰民", "Noise nuisance", _E, "生态环境局", 12),
)

CATEGORIES: tuple[CategoryRecord, ...] = tuple(
    CategoryRecord(code=c, name_zh=zh, name_en=en, kind=k, department=d, sla_hours=float(h))
    for c, zh, en, k, d, h in _ROWS
)
