# Sandbank simulator. Build: docker build -t sandbank .   Run: docker run -p 8080:8080 sandbank
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    SANDBANK_DATA_DIR=/data SANDBANK_PUBLIC_URL=http://localhost:8080
WORKDIR /app
COPY pyproject.toml README.md ./
COPY simulator ./simulator
COPY contracts ./contracts
# The postgres extra: the same image serves a SQLite file or a shared PostgreSQL database.
RUN pip install ".[postgres]" && useradd --create-home --uid 10001 sandbank \
    && mkdir -p /data && chown sandbank /data
USER sandbank
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/_sandbox/health', timeout=2).status != 200)"]
CMD ["sandbank", "serve", "--host", "0.0.0.0", "--port", "8080"]
