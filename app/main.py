"""The FastAPI application: lifespan, middleware, routers, error handlers."""

import asyncio
import gc
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.http.handlers import install_error_handlers
from app.http.middleware import RequestContextMiddleware
from app.http.problems import COMMON_PROBLEMS
from app.infra.config import settings
from app.infra.db import db
from app.infra.logs import configure_logging
from app.infra.security import keystore
from app.metrics import collect as metrics_collect
from app.metrics import retire_this_process
from app.metrics.middleware import MetricsMiddleware
from app.routers import (
    accounts,
    auth,
    docs,
    documents,
    feedback_rounds,
    health,
    members,
    metrics,
    notices,
    organizations,
    registry,
    reports,
    subscriptions,
    supplier_keys,
)
from app.routers import audit as audit_router
from app.services import account_cache, audit, feedback, housekeeping, webhooks
from app.services.keys import ensure_signing_key
from app.services.sequencer import sequencer

log = logging.getLogger("app")

DESCRIPTION = """
Dịch vụ trao đổi thông tin hai chiều về đảng viên giữa hai bên (Quy chế phối hợp 3558-QĐ/TU): **bên nơi làm
việc** (tổ chức đảng quản lý hồ sơ đảng viên công tác tại các cơ quan thành phố) và **bên nơi cư trú** (tổ chức
đảng nơi đảng viên cư trú). Bên của mỗi tổ chức có trong danh mục tổ chức đảng.

**Cán bộ**: bấm *Authorize*, nhập tên đăng nhập và mật khẩu (để trống client_id/secret).
**Hệ thống của tổ chức**: lấy mã truy cập bằng `grant_type=client_credentials`.

Mọi lỗi trả về dạng `application/problem+json` với `code` ổn định và `detail` tiếng Việt.
"""

TAGS = [
    {"name": "Xác thực", "description": "Cấp mã truy cập và khóa công khai của dịch vụ."},
    {"name": "Tổ chức đảng", "description": "Danh mục tổ chức đảng và bên trao đổi của mỗi tổ chức."},
    {
        "name": "Danh mục tổ chức",
        "description": "Ấn bản danh mục: sắp xếp lại tổ chức (giải thể, tổ chức kế tục), xem trước rồi áp dụng.",
    },
    {"name": "Đảng viên", "description": "Hồ sơ đảng viên và nơi cư trú; mỗi bên chỉ xem phạm vi của mình."},
    {"name": "Thông báo", "description": "Gửi, nhận, xác nhận và trả lời thông báo giữa hai bên."},
    {"name": "Tài liệu", "description": "Tài liệu kèm nguồn gốc: bên cung cấp, cán bộ chịu trách nhiệm, mã băm."},
    {"name": "Khóa ký tài liệu", "description": "Khóa công khai để tổ chức ký tài liệu mình cung cấp."},
    {"name": "Đợt xin ý kiến nơi cư trú", "description": "Đợt nhận xét hằng năm: mở một lần, theo dõi tiến độ."},
    {"name": "Báo cáo", "description": "Đối soát các việc còn mở giữa hai bên (JSON hoặc CSV)."},
    {"name": "Nhận thông báo đẩy", "description": "Hệ thống của tổ chức nhận thông báo mới (Standard Webhooks)."},
    {"name": "Quản trị tài khoản", "description": "Tài khoản hệ thống và cán bộ của từng tổ chức."},
    {"name": "Nhật ký kiểm tra", "description": "Ai đã đọc, ghi gì; kiểm tra toàn vẹn; checkpoint đã ký."},
    {"name": "Hệ thống", "description": "Kiểm tra tình trạng dịch vụ."},
]


@asynccontextmanager
async def lifespan(_app: FastAPI):
    async with db.sessions() as session:
        if settings.environment != "production" and await ensure_signing_key(session=session):
            log.warning("created a development signing key")
        await session.commit()
        await keystore.load(session)
    if not keystore.has_keys():
        raise RuntimeError("no signing key: run `member-exchange init` first")
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(account_cache.cache.run(stop=stop)),
        asyncio.create_task(audit.run_sealer(sessions=db.sessions, stop=stop)),
        asyncio.create_task(audit.run_replayer(sessions=db.sessions, stop=stop)),
        asyncio.create_task(sequencer.run(sessions=db.sessions, stop=stop)),
    ]
    if settings.webhook_worker:
        tasks.append(asyncio.create_task(webhooks.run_worker(sessions=db.sessions, stop=stop)))
        tasks.append(asyncio.create_task(feedback.run_reminders(stop=stop)))
    tasks.append(asyncio.create_task(metrics_collect.run_sampler(stop=stop)))
    if settings.housekeeping_enabled:
        tasks.append(asyncio.create_task(housekeeping.run_periodically(stop=stop)))
    # What is loaded by now lives as long as the process: keep it out of the collector's full passes.
    gc.freeze()
    yield
    stop.set()
    await asyncio.gather(*tasks)
    await db.engine.dispose()
    retire_this_process()


def create_app() -> FastAPI:
    configure_logging(settings.log_level)
    app = FastAPI(
        title="member-exchange — Trao đổi thông tin đảng viên",
        version="1.0.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        docs_url=None,  # served by app.routers.docs, from the service's own copy of Swagger UI
        redoc_url=None,
        # operationId = the route's stable name ("notice.push"): readable in generated clients and in the audit.
        generate_unique_id_function=lambda route: route.name,
    )
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        upload_paths=("/api/v1/documents",),
        max_upload_bytes=settings.max_document_bytes,
        body_timeout=settings.body_read_timeout_seconds,
        no_store_paths=("/api/v1/auth/token",),
    )
    app.add_middleware(MetricsMiddleware)  # outermost: counts what the layer above refuses, too
    install_error_handlers(app)
    if settings.docs_enabled:
        docs.mount_static(app)
        app.include_router(docs.router)
    routers = (
        health,
        auth,
        organizations,
        registry,
        members,
        notices,
        documents,
        feedback_rounds,
        reports,
        subscriptions,
        supplier_keys,
        accounts,
        audit_router,
    )
    for module in routers:
        app.include_router(module.router, responses=COMMON_PROBLEMS if module is not health else None)
    app.include_router(metrics.router)
    return app


app = create_app()
