# Sandbank: the simulator, the reference integration, the contract suite and the scenarios.
#
#   docker build -t sandbank .
#   docker run -p 8080:8080 sandbank                          # sandbank serve (the default)
#   docker run sandbank sandbank integration serve --provider-url http://sim:8080 --api-key ...
#   docker run sandbank sandbank contract --base-url http://sim:8080 --admin-token ...
#   docker run sandbank sandbank scenario run baseline
#   docker compose up                                         # simulator + integration, wired
#
# Stage 1 installs into a virtualenv with the build tools at hand; stage 2 is the slim runtime
# with only that virtualenv, the scenario catalogue and a non-root user.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY simulator ./simulator
COPY contracts ./contracts
COPY integration ./integration
COPY rehearsal ./rehearsal
COPY sandbank_pytest ./sandbank_pytest
COPY loadtests ./loadtests
COPY fakes ./fakes
# The postgres extra: the same image serves a SQLite file or a shared PostgreSQL database.
RUN python -m venv /opt/sandbank \
    && /opt/sandbank/bin/pip install ".[integration,contract,postgres]"

FROM python:3.11-slim
ENV PATH=/opt/sandbank/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    SANDBANK_DATA_DIR=/data SANDBANK_PUBLIC_URL=http://localhost:8080 \
    SANDBANK_SCENARIOS=/opt/scenarios
COPY --from=build /opt/sandbank /opt/sandbank
COPY scenarios /opt/scenarios
RUN useradd --create-home --uid 10001 sandbank && mkdir -p /data && chown sandbank /data
USER sandbank
# The data directory is also the working directory: the integration's database and scenario
# reports land there by default.
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080 8090
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/_sandbox/health', timeout=2).status != 200)"]
CMD ["sandbank", "serve", "--host", "0.0.0.0", "--port", "8080"]
