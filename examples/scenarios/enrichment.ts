// Scenario job: clicks from two channels (web and app, two sources) are unioned, then connected with a
// control stream of user profiles, both keyed by user: each click leaves enriched with its user's country.
// A click that arrives before its user's profile waits in keyed list state until the profile comes, so
// the output does not depend on which stream is read first. All sources are bounded.
// Used by scenarios/union-connect.scenario.yaml.
import * as t from "io-ts";
import { defineJob, listState, Sinks, Sources, valueState } from "weir";

export const Click = t.type({ user: t.string, page: t.string }, "Click");
export const Profile = t.type({ user: t.string, country: t.string }, "Profile");
type Click = t.TypeOf<typeof Click>;
type Profile = t.TypeOf<typeof Profile>;
interface ChannelClick extends Click { channel: "web" | "app" }
export interface EnrichedClick extends ChannelClick { country: string }

const ChannelClickCodec = t.type({ user: t.string, page: t.string, channel: t.keyof({ web: null, app: null }) });
const profile = valueState("profile", Profile);
const waiting = listState("waiting", ChannelClickCodec);

export default defineJob({ name: "scenario-enrich", parallelism: 2 }, (env) => {
  const clicks = (channel: ChannelClick["channel"]) => env
    .fromSource(Sources.jetstream({ stream: "CLICKS", subjects: [`clicks.${channel}`], codec: Click, bounded: true }), { name: `${channel} clicks` })
    .map((c): ChannelClick => ({ ...c, channel }), { name: `tag ${channel}` });
  const profiles = env.fromSource(Sources.jetstream({ stream: "PROFILES", subjects: ["profiles.>"], codec: Profile, bounded: true }), { name: "profiles" });

  clicks("web")
    .union(clicks("app"))
    .connect(profiles)
    .keyBy((c) => c.user, (p) => p.user)
    .process<EnrichedClick>({
      async processElement1(click, ctx) {
        const p = await ctx.state(profile).value();
        if (p) ctx.collect({ ...click, country: p.country });
        else await ctx.state(waiting).add(click);
      },
      async processElement2(p, ctx) {
        await ctx.state(profile).update(p);
        for (const click of (await ctx.state(waiting).get()) ?? []) ctx.collect({ ...click, country: p.country });
        await ctx.state(waiting).clear();
      },
    }, { name: "enrich" })
    .sinkTo(Sinks.jetstream({ stream: "ENRICHED", subject: (e: EnrichedClick) => `enriched.${e.channel}.${e.user}` }), { name: "enriched sink" });
});
