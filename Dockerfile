# The verify-email bot: `python -m bot` on a slim Python, as a non-root user.
# Build: docker build -t verify-email-bot .
# Run:   docker run --env-file .env -p 3000:3000 -v verify-email-data:/data verify-email-bot
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
# The postgres extra too, so one image serves SQLite and PostgreSQL (DATABASE_URL decides).
RUN pip install ".[postgres]"

# A user of its own, owning only the data directory (the SQLite store, when used).
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin bot \
    && mkdir -p /data && chown bot:bot /data
USER bot

ENV PORT=3000 \
    DATABASE_URL=sqlite:////data/verify-email.db \
    LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 3000

# /healthz is cheap (200 while the process serves; it asks nothing, not even the store: that
# is /readyz); in Socket Mode it is served on PORT too. The slim image has no curl: Python asks.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '3000') + '/healthz', timeout=4)"]

CMD ["python", "-m", "bot"]
