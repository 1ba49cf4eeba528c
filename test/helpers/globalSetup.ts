// Placeholder: replaced by the Redis test setup (spawns redis-server / cluster and provides their addresses).
export const setup = async (): Promise<void> => {};
export const teardown = async (): Promise<void> => {};
