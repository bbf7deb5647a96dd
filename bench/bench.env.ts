/** A numeric bench setting from the environment, or its default (benches read their sizes this way). */
export const envNumber = (key: string, fallback: number): number => (process.env[key] === undefined ? fallback : Number(process.env[key]));
