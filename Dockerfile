# Production image: non-root, production settings; the schema is migrated by `member-exchange serve` on start.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MX_ENVIRONMENT=production \
    MX_DATA_DIR=/var/lib/member-exchange

WORKDIR /srv/member-exchange
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY alembic ./alembic
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /srv/member-exchange member-exchange \
    && mkdir -p /var/lib/member-exchange \
    && chown member-exchange /var/lib/member-exchange

USER member-exchange
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status == 200 else 1)"]
# DATABASE_URL and MX_KEY_PASSPHRASE must be provided; the service refuses to start with placeholders.
CMD ["member-exchange", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
