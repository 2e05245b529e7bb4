#!/bin/bash
# Run once by the mysql image when its volume is first created (notebook 12): Debezium
# reads the binary log as a replica does, so the workbook's user gets a replica's rights.
# MySQL 8.4 writes its binary log in rows by default; nothing else to change.
docker_process_sql <<-EOSQL
	GRANT RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '${MYSQL_USER}'@'%';
EOSQL
