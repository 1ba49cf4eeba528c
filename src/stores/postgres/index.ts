export { createPostgresStore } from './postgresStore';
export type { PostgresStore } from './postgresStore';
export { postgresStoreDefaults } from './options';
export type { PostgresStoreOptions } from './options';
export { createPostgresTable, postgresTableSql } from './schema';
