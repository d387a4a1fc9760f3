-- Run once by the MariaDB image's entrypoint, on the first start of an empty data directory,
-- after it has created the app's database and user (docker-entrypoint.sh, docker_setup_db, then
-- docker_process_init_files for /docker-entrypoint-initdb.d/*.sql). Those statements are
-- binlogged under this server's server_id, so each home would start with a history of its own
-- and a fresh replica would look like a diverged former primary (replication.sh rejoin). Each
-- home created them for itself; neither needs the other's: the binlog starts empty.
RESET MASTER;
