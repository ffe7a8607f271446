# One image for the web process and the workers of docker-compose.yml (issue 12).
FROM python:3.11-slim
WORKDIR /lab
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt gunicorn
COPY . .
# the data home is the shared volume mounted at /data (docker-compose.yml)
ENV ALMANAC_HOME=/data PYTHONUNBUFFERED=1
RUN useradd --create-home lab && mkdir -p /data && chown lab /data
USER lab
