/**
 * Parsers for Tessera's environment settings, shared by the host's config and each module's config slice: a bad
 * value fails at startup with a `ConfigError` naming the variable, never later at first use.
 */
import { Config, ConfigProvider, Duration, Effect, Redacted } from "effect"

/** A `ConfigError` with `message`, for checks across several variables. */
export const invalid = (message: string) => new Config.ConfigError(new ConfigProvider.SourceError({ message }))

export const positiveInt = (name: string, fallback: number) =>
  Config.Int(name).pipe(
    Config.mapEffect((n) =>
      n > 0
        ? Effect.succeed(n)
        : Effect.fail(
            new Config.ConfigError(
              new ConfigProvider.SourceError({ message: `${name} must be a positive integer, got ${n}` })
            )
          )
    ),
    Config.withDefault(fallback)
  )

export const port = (name: string, fallback: number) =>
  Config.Int(name).pipe(
    Config.mapEffect((n) =>
      n >= 0 && n <= 65535
        ? Effect.succeed(n)
        : Effect.fail(
            new Config.ConfigError(
              new ConfigProvider.SourceError({ message: `${name} must be a port number (0-65535), got ${n}` })
            )
          )
    ),
    Config.withDefault(fallback)
  )

export const url = (name: string, schemes: ReadonlyArray<string>) =>
  Config.Redacted(name).pipe(
    Config.mapEffect((value) => {
      let parsed: URL | undefined
      try {
        parsed = new URL(Redacted.value(value))
      } catch {
        parsed = undefined
      }
      return parsed !== undefined && schemes.includes(parsed.protocol)
        ? Effect.succeed(value)
        : Effect.fail(
            new Config.ConfigError(
              new ConfigProvider.SourceError({ message: `${name} must be a URL starting with ${schemes.join(" or ")}` })
            )
          )
    }),
    Config.option
  )

export const zoneList = (name: string) =>
  Config.String(name).pipe(
    Config.mapEffect((value) => {
      const zones = value
        .split(",")
        .map((zone) => zone.trim())
        .filter((zone) => zone.length > 0)
      const bad = zones.find((zone) => !/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(zone))
      const duplicate = zones.find((zone, i) => zones.indexOf(zone) !== i)
      const problem =
        bad !== undefined
          ? `${name}: zone ${JSON.stringify(bad)} must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit`
          : duplicate !== undefined
            ? `${name}: zone ${duplicate} is listed twice`
            : undefined
      return problem === undefined
        ? Effect.succeed(zones as ReadonlyArray<string>)
        : Effect.fail(new Config.ConfigError(new ConfigProvider.SourceError({ message: problem })))
    }),
    Config.withDefault([] as ReadonlyArray<string>)
  )

export const duration = (name: string, fallback: Duration.Duration) =>
  Config.Duration(name).pipe(Config.map(Duration.fromInputUnsafe), Config.withDefault(fallback))
