"""Synthetic members for load tests: realistic Vietnamese names, every district, every residence status.

Never for production data: the card numbers come from a range (`--start`) chosen by the operator.
"""

import random
from datetime import date, timedelta

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.base import utcnow
from app.models.member import ExemptionCategory, Member, ResidenceStatus
from app.services.organizations import registry_data
from app.text import fold

SURNAMES = [
    ("Nguyễn", 38),
    ("Trần", 11),
    ("Lê", 9),
    ("Phạm", 7),
    ("Hoàng", 5),
    ("Phan", 4),
    ("Vũ", 4),
    ("Đặng", 2),
    ("Bùi", 2),
    ("Đỗ", 2),
    ("Hồ", 1),
    ("Ngô", 1),
    ("Dương", 1),
    ("Lý", 1),
    ("Đinh", 1),
    ("Trịnh", 1),
    ("Đào", 1),
    ("Lương", 1),
    ("Tạ", 1),
    ("Chu", 1),
]
MIDDLE_M = ["Văn", "Đức", "Hữu", "Minh", "Quang", "Thanh", "Mạnh", "Tiến", "Xuân", "Công", "Ngọc", "Trọng"]
MIDDLE_F = ["Thị", "Thu", "Ngọc", "Thanh", "Minh", "Hồng", "Phương", "Kim", "Thúy", "Bích", "Diệu", "Mai"]
GIVEN_M = [
    "An",
    "Bình",
    "Cường",
    "Dũng",
    "Đạt",
    "Hải",
    "Hiếu",
    "Hùng",
    "Huy",
    "Khánh",
    "Long",
    "Minh",
    "Nam",
    "Phong",
    "Quân",
    "Sơn",
    "Thắng",
    "Thành",
    "Toàn",
    "Trung",
    "Tuấn",
    "Việt",
    "Vinh",
    "Đức",
    "Hoàng",
]
GIVEN_F = [
    "Anh",
    "Châu",
    "Dung",
    "Giang",
    "Hà",
    "Hạnh",
    "Hằng",
    "Hoa",
    "Huyền",
    "Hương",
    "Lan",
    "Liên",
    "Linh",
    "Loan",
    "Mai",
    "Nga",
    "Ngân",
    "Nhung",
    "Oanh",
    "Phương",
    "Quỳnh",
    "Thảo",
    "Trang",
    "Vân",
    "Yến",
]
WARD_NAMES = [
    "Điện Biên",
    "Kim Mã",
    "Ngọc Hà",
    "Cống Vị",
    "Liễu Giai",
    "Quán Thánh",
    "Trúc Bạch",
    "Phúc Xá",
    "Dịch Vọng",
    "Mai Dịch",
    "Nghĩa Đô",
    "Quan Hoa",
    "Yên Hòa",
    "Trung Hòa",
    "Láng Hạ",
    "Kim Liên",
    "Văn Miếu",
    "Quốc Tử Giám",
    "Hàng Bạc",
    "Tràng Tiền",
    "Đông Anh",
    "Tiên Dương",
    "Vân Nội",
    "Xuân Canh",
]
STREETS = [
    "Hoàng Hoa Thám",
    "Đội Cấn",
    "Kim Mã",
    "Nguyễn Chí Thanh",
    "Cầu Giấy",
    "Trần Duy Hưng",
    "Láng",
    "Giải Phóng",
    "Minh Khai",
    "Nguyễn Trãi",
    "Lạc Long Quân",
    "Âu Cơ",
    "Ngọc Lâm",
    "Nguyễn Văn Cừ",
]
UNITS = [
    "Văn phòng Thành ủy",
    "Văn phòng UBND Thành phố",
    "Sở Tư pháp",
    "Sở Tài chính",
    "Sở Kế hoạch và Đầu tư",
    "Sở Xây dựng",
    "Sở Giao thông vận tải",
    "Sở Y tế",
    "Sở Giáo dục và Đào tạo",
    "Sở Nội vụ",
    "Sở Tài nguyên và Môi trường",
    "Sở Công Thương",
    "Sở Văn hóa và Thể thao",
    "Sở Du lịch",
    "Sở Khoa học và Công nghệ",
    "Sở Thông tin và Truyền thông",
    "Sở Lao động - Thương binh và Xã hội",
    "Sở Nông nghiệp và Phát triển nông thôn",
    "Sở Quy hoạch - Kiến trúc",
    "Sở Ngoại vụ",
    "Thanh tra Thành phố",
    "Ban Dân tộc",
    "Cục Thuế Hà Nội",
    "Kho bạc Nhà nước Hà Nội",
    "Bảo hiểm xã hội Thành phố",
    "Ủy ban MTTQ Thành phố",
    "Thành đoàn Hà Nội",
    "Hội Liên hiệp Phụ nữ Thành phố",
    "Liên đoàn Lao động Thành phố",
    "Hội Nông dân Thành phố",
    "Hội Cựu chiến binh",
    "Báo Hànộimới",
    "Báo Kinh tế và Đô thị",
    "Đài Phát thanh và Truyền hình Hà Nội",
    "Trường Đào tạo cán bộ Lê Hồng Phong",
    "Ban Tổ chức Thành ủy",
    "Ban Tuyên giáo Thành ủy",
    "Ban Dân vận Thành ủy",
    "Ban Nội chính Thành ủy",
    "Ủy ban Kiểm tra Thành ủy",
    "Ban Quản lý các khu công nghiệp và chế xuất",
    "Ban Quản lý dự án đầu tư xây dựng",
    "Viện Nghiên cứu phát triển KT-XH",
    "Quỹ Đầu tư phát triển Thành phố",
    "Trung tâm Xúc tiến đầu tư",
    "Hội đồng nhân dân Thành phố",
    "Tòa án nhân dân Thành phố",
    "Viện Kiểm sát nhân dân Thành phố",
    "Cục Thống kê Hà Nội",
    "Cục Hải quan Hà Nội",
    "Ngân hàng Nhà nước chi nhánh Hà Nội",
    "Sở Quy hoạch",
    "Sở Xây dựng - Thanh tra",
    "Ban Chỉ đạo 35",
    "Văn phòng Đoàn ĐBQH",
    "Liên minh Hợp tác xã",
    "Hội Chữ thập đỏ",
    "Liên hiệp các Hội Khoa học",
    "Hội Văn học Nghệ thuật",
    "Hội Luật gia",
    "Hội Nhà báo",
    "Trường Cao đẳng Y tế",
    "Bệnh viện Đa khoa Xanh Pôn",
    "Bệnh viện Thanh Nhàn",
    "Bệnh viện Đức Giang",
]


def _weighted(rng: random.Random, pairs):
    total = sum(w for _, w in pairs)
    r = rng.uniform(0, total)
    for value, w in pairs:
        r -= w
        if r <= 0:
            return value
    return pairs[-1][0]


def make_members(count: int, *, start: int = 20_000_000, seed: int = 1) -> list[dict]:
    """`count` member rows (dicts for a bulk insert), deterministic for a seed."""
    rng = random.Random(seed)
    registry = [o for o in registry_data() if not o.get("valid_to")]
    districts = [(o["code"], o.get("unit", "quận")) for o in registry if o.get("side") == "residence"]
    workplace = next(o["code"] for o in registry if o.get("side") == "workplace")
    statuses = [
        (ResidenceStatus.accepted.value, 86),
        (ResidenceStatus.exempt.value, 4),
        (ResidenceStatus.introduced.value, 5),
        (ResidenceStatus.not_accepted.value, 2),
        (ResidenceStatus.moved_away.value, 3),
    ]
    now = utcnow()
    rows = []
    for i in range(count):
        female = rng.random() < 0.45
        name = " ".join(
            [
                _weighted(rng, SURNAMES),
                rng.choice(MIDDLE_F if female else MIDDLE_M),
                rng.choice(GIVEN_F if female else GIVEN_M),
            ]
        )
        district, unit = districts[i % len(districts)]
        ward = f"{'Xã' if unit == 'huyện' and rng.random() < 0.8 else 'Phường'} {rng.choice(WARD_NAMES)}"
        status = _weighted(rng, statuses)
        unit_index = rng.randrange(len(UNITS))
        birth = date(1960, 1, 1) + timedelta(days=rng.randrange(0, 365 * 42))
        rows.append({
            "party_card_no": str(start + i), "full_name": name, "name_folded": fold(name), "birth_date": birth,
            "citizen_id": f"001{rng.randrange(10**8, 10**9)}", "workplace_org": workplace,
            "workplace_unit_code": f"dv-{unit_index + 1:02d}",
            "workplace_unit_name": f"Đảng bộ {UNITS[unit_index]}", "residence_org": district,
            "residence_ward": ward, "ward_folded": fold(ward),
            "residence_address": f"Số {rng.randrange(1, 300)} {rng.choice(STREETS)}",
            "residence_since": birth + timedelta(days=365 * 25), "residence_status": status,
            "residence_cell": f"Chi bộ Tổ dân phố số {rng.randrange(1, 40)}" if status == "accepted" else None,
            "status_reason": "Không cư trú tại địa chỉ đã giới thiệu" if status == "not_accepted" else None,
            "exemption_category": rng.choice(list(ExemptionCategory)).value if status == "exempt" else None,
            "version": 1, "created_at": now, "updated_at": now,
        })  # fmt: skip
    return rows


async def insert_members(*, session: AsyncSession, rows: list[dict], batch: int = 10_000) -> int:
    """Bulk insert (Core, batched)."""
    for i in range(0, len(rows), batch):
        await session.execute(insert(Member.__table__), rows[i : i + batch])
    return len(rows)
