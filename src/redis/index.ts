export { createRedisStore } from './redisStore';
export type { RedisStore } from './redisStore';
export { redisStoreDefaults } from './options';
export type { RedisStoreOptions } from './options';
