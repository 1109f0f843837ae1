using System.Text.Json.Serialization.Metadata;
using Conveyor.Client.Internal;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Conveyor.Client;

/// <summary>
/// Registers job handlers for the worker host. A handler serves one queue, and either one <c>kind</c> or (kind null)
/// every kind of that queue that no kind-specific handler claims. A queue with handlers is worked on even if
/// <see cref="ConveyorWorkerOptions.Queue"/> never declared it (with default settings).
/// </summary>
public sealed class ConveyorWorkerBuilder
{
    internal ConveyorWorkerBuilder(IServiceCollection services) => Services = services;

    public IServiceCollection Services { get; }

    /// <summary>
    /// Handles jobs of <paramref name="queue"/> with <typeparamref name="THandler"/>, resolved from a new DI scope for
    /// every job (registered as scoped unless already registered). The job completes with a null result.
    /// </summary>
    public ConveyorWorkerBuilder AddHandler<TPayload, THandler>(
        string queue, string? kind = null, JsonTypeInfo<TPayload>? payloadTypeInfo = null)
        where THandler : class, IJobHandler<TPayload>
    {
        Services.TryAddScoped<THandler>();
        return Add(HandlerRegistration.ForService<TPayload, THandler>(queue, kind, payloadTypeInfo));
    }

    /// <summary>
    /// Handles jobs of <paramref name="queue"/> with <typeparamref name="THandler"/>, resolved from a new DI scope for
    /// every job; its return value becomes the job's result.
    /// </summary>
    public ConveyorWorkerBuilder AddHandler<TPayload, TResult, THandler>(
        string queue, string? kind = null, JsonTypeInfo<TPayload>? payloadTypeInfo = null, JsonTypeInfo<TResult>? resultTypeInfo = null)
        where THandler : class, IJobHandler<TPayload, TResult>
    {
        Services.TryAddScoped<THandler>();
        return Add(HandlerRegistration.ForService<TPayload, TResult, THandler>(queue, kind, payloadTypeInfo, resultTypeInfo));
    }

    /// <summary>Handles jobs of <paramref name="queue"/> with a delegate; <see cref="JobContext.Services"/> is the job's scope.</summary>
    public ConveyorWorkerBuilder AddHandler<TPayload>(
        string queue,
        Func<TPayload, JobContext, CancellationToken, Task> handler,
        string? kind = null,
        JsonTypeInfo<TPayload>? payloadTypeInfo = null)
    {
        ArgumentNullException.ThrowIfNull(handler);
        return Add(HandlerRegistration.ForDelegate(queue, kind, handler, payloadTypeInfo));
    }

    /// <summary>Handles jobs of <paramref name="queue"/> with a delegate whose return value becomes the job's result.</summary>
    public ConveyorWorkerBuilder AddHandler<TPayload, TResult>(
        string queue,
        Func<TPayload, JobContext, CancellationToken, Task<TResult>> handler,
        string? kind = null,
        JsonTypeInfo<TPayload>? payloadTypeInfo = null,
        JsonTypeInfo<TResult>? resultTypeInfo = null)
    {
        ArgumentNullException.ThrowIfNull(handler);
        return Add(HandlerRegistration.ForDelegate(queue, kind, handler, payloadTypeInfo, resultTypeInfo));
    }

    private ConveyorWorkerBuilder Add(HandlerRegistration registration)
    {
        ArgumentException.ThrowIfNullOrEmpty(registration.Queue, "queue");
        if (registration.Kind is { Length: 0 })
        {
            throw new ArgumentException("kind must be null (every kind) or a non-empty kind such as email.send.", "kind");
        }

        Services.AddSingleton(registration);
        return this;
    }
}
