using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.Extensions.DependencyInjection;

namespace Conveyor.Client.Internal;

/// <summary>
/// One handler for a queue (and optionally one kind), reduced to "raw job in, raw result out" so the worker loop knows
/// nothing about payload types. Registered in DI as a singleton; the worker collects them at start.
/// </summary>
internal sealed class HandlerRegistration(
    string queue,
    string? kind,
    string description,
    Func<IServiceProvider, JobInfo, JsonSerializerOptions, JobContext, CancellationToken, Task<JsonElement?>> invoke)
{
    public string Queue { get; } = queue;

    /// <summary>Null: every kind in the queue that no kind-specific handler claims.</summary>
    public string? Kind { get; } = kind;

    public string Description { get; } = description;

    public Task<JsonElement?> InvokeAsync(
        IServiceProvider services, JobInfo job, JsonSerializerOptions serializerOptions, JobContext context, CancellationToken cancellationToken) =>
        invoke(services, job, serializerOptions, context, cancellationToken);

    public static HandlerRegistration ForService<TPayload, TResult, THandler>(
        string queue, string? kind, JsonTypeInfo<TPayload>? payloadType, JsonTypeInfo<TResult>? resultType)
        where THandler : class, IJobHandler<TPayload, TResult> =>
        new(queue, kind, typeof(THandler).Name, async (services, job, json, context, ct) =>
        {
            var payload = ReadPayload(job, payloadType, json);
            var handler = services.GetRequiredService<THandler>();
            var result = await NotNull(handler.HandleAsync(payload, context, ct), typeof(THandler).Name).ConfigureAwait(false);
            return WriteResult(result, resultType, json);
        });

    public static HandlerRegistration ForService<TPayload, THandler>(string queue, string? kind, JsonTypeInfo<TPayload>? payloadType)
        where THandler : class, IJobHandler<TPayload> =>
        new(queue, kind, typeof(THandler).Name, async (services, job, json, context, ct) =>
        {
            var payload = ReadPayload(job, payloadType, json);
            var handler = services.GetRequiredService<THandler>();
            await NotNull(handler.HandleAsync(payload, context, ct), typeof(THandler).Name).ConfigureAwait(false);
            return null;
        });

    public static HandlerRegistration ForDelegate<TPayload, TResult>(
        string queue,
        string? kind,
        Func<TPayload, JobContext, CancellationToken, Task<TResult>> handler,
        JsonTypeInfo<TPayload>? payloadType,
        JsonTypeInfo<TResult>? resultType) =>
        new(queue, kind, "delegate", async (_, job, json, context, ct) =>
        {
            var payload = ReadPayload(job, payloadType, json);
            var result = await NotNull(handler(payload, context, ct), "delegate").ConfigureAwait(false);
            return WriteResult(result, resultType, json);
        });

    public static HandlerRegistration ForDelegate<TPayload>(
        string queue, string? kind, Func<TPayload, JobContext, CancellationToken, Task> handler, JsonTypeInfo<TPayload>? payloadType) =>
        new(queue, kind, "delegate", async (_, job, json, context, ct) =>
        {
            var payload = ReadPayload(job, payloadType, json);
            await NotNull(handler(payload, context, ct), "delegate").ConfigureAwait(false);
            return null;
        });

    private static T NotNull<T>(T? task, string handler)
        where T : Task =>
        task ?? throw new InvalidOperationException($"the handler {handler} returned a null Task; return Task.CompletedTask or a result");

    private static TPayload ReadPayload<TPayload>(JobInfo job, JsonTypeInfo<TPayload>? typeInfo, JsonSerializerOptions json)
    {
        typeInfo ??= (JsonTypeInfo<TPayload>)json.GetTypeInfo(typeof(TPayload));
        try
        {
            if (job.Payload is { } payload)
            {
                return payload.Deserialize(typeInfo)!;
            }

            return JsonSerializer.Deserialize("null"u8, typeInfo)!;
        }
        catch (JsonException exception)
        {
            // The same payload will never read differently: retrying cannot help.
            throw new JobFailedPermanentlyException(
                $"the payload of job {job.Id} could not be read as {typeof(TPayload).Name}: {exception.Message}", exception);
        }
    }

    private static JsonElement? WriteResult<TResult>(TResult result, JsonTypeInfo<TResult>? typeInfo, JsonSerializerOptions json)
    {
        if (result is null)
        {
            return null;
        }

        if (result is JsonElement element)
        {
            return element;
        }

        typeInfo ??= (JsonTypeInfo<TResult>)json.GetTypeInfo(typeof(TResult));
        return JsonSerializer.SerializeToElement(result, typeInfo);
    }
}
