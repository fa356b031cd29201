"""Mount paths every layer must refuse."""

# The list: each passed both checks before, because the denylist matched whole paths only.
SYSTEM_DIRECTORIES = [
    "/etc/cron.d",
    "/usr/bin",
    "/root/.ssh",
    "/var/lib/ecs/data",
    "/boot/efi",
    "/etc/systemd/system",
    "/usr/local/bin",
    "/var/spool/cron",
]
