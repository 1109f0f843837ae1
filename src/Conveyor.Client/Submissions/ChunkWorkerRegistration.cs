using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Conveyor.Client;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

// In the DI namespace, as is the convention, so `services.AddConveyorChunkWorker(…)` needs no extra using.
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers chunk workers: one hosted service per queue, started and stopped with the application.</summary>
public static class ConveyorChunkWorkerServiceCollectionExtensions
{
    /// <summary>
    /// Works the chunks of <paramref name="queue"/> with <typeparamref name="THandler"/>, resolved from a fresh DI scope
    /// per chunk. Uses the <see cref="ConveyorClient"/> from DI (<c>services.AddConveyor(…)</c>).
    /// </summary>
    public static IServiceCollection AddConveyorChunkWorker<THandler>(
        this IServiceCollection services, string queue, Action<ChunkWorkerOptions>? configure = null)
        where THandler : class, IChunkHandler
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddScoped<THandler>();
        return Add(services, queue, configure, provider =>
        {
            var scopes = provider.GetRequiredService<IServiceScopeFactory>();
            return async (chunk, cancellationToken) =>
            {
                var scope = scopes.CreateAsyncScope();
                await using (scope.ConfigureAwait(false))
                {
                    var handler = scope.ServiceProvider.GetRequiredService<THandler>();
                    return await handler.HandleAsync(chunk.WithServices(scope.ServiceProvider), cancellationToken).ConfigureAwait(false);
                }
            };
        });
    }

    /// <summary>Works the chunks of <paramref name="queue"/> with <paramref name="handler"/>.</summary>
    public static IServiceCollection AddConveyorChunkWorker(
        this IServiceCollection services,
        string queue,
        Func<ChunkContext, CancellationToken, Task<ChunkOutput>> handler,
        Action<ChunkWorkerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(handler);
        return Add(services, queue, configure, _ => handler);
    }

    /// <summary>
    /// Works the chunks of <paramref name="queue"/> with a typed handler: each chunk's data is read as
    /// <typeparamref name="TInput"/> (inline JSON, or a JSON object-store body) and the returned
    /// <typeparamref name="TResult"/> is the chunk's JSON result. Pass type infos from a source-generated context to
    /// avoid reflection.
    /// </summary>
    public static IServiceCollection AddConveyorChunkWorker<TInput, TResult>(
        this IServiceCollection services,
        string queue,
        Func<TInput?, ChunkContext, CancellationToken, Task<TResult>> handler,
        JsonTypeInfo<TInput>? inputTypeInfo = null,
        JsonTypeInfo<TResult>? resultTypeInfo = null,
        Action<ChunkWorkerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(handler);
        return Add(services, queue, configure, provider =>
        {
            var options = provider.GetRequiredService<ConveyorClient>().SerializerOptions;
            var input = inputTypeInfo ?? (JsonTypeInfo<TInput>)options.GetTypeInfo(typeof(TInput));
            var result = resultTypeInfo ?? (JsonTypeInfo<TResult>)options.GetTypeInfo(typeof(TResult));
            return async (chunk, cancellationToken) =>
            {
                var answer = await handler(chunk.ReadData(input), chunk, cancellationToken).ConfigureAwait(false);
                return ChunkOutput.FromJson(JsonSerializer.SerializeToElement(answer, result));
            };
        });
    }

    private static IServiceCollection Add(
        IServiceCollection services,
        string queue,
        Action<ChunkWorkerOptions>? configure,
        Func<IServiceProvider, Func<ChunkContext, CancellationToken, Task<ChunkOutput>>> handler)
    {
        ArgumentException.ThrowIfNullOrEmpty(queue);
        var options = new ChunkWorkerOptions();
        configure?.Invoke(options);

        // Configuration mistakes fail here, at registration, with a sentence saying what to change.
        options.Validate(queue);

        // A factory registration adds one hosted service per call (TryAddEnumerable would keep only the first queue).
        services.AddSingleton<IHostedService>(provider => new ChunkWorkerService(new ChunkWorker(
            provider.GetRequiredService<ConveyorClient>(),
            queue,
            handler(provider),
            options,
            (provider.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger("Conveyor.Client.ChunkWorker"))));
        return services;
    }

    /// <summary>Runs one <see cref="ChunkWorker"/> for the application's lifetime.</summary>
    private sealed class ChunkWorkerService(ChunkWorker worker) : BackgroundService
    {
        protected override Task ExecuteAsync(CancellationToken stoppingToken) => worker.RunAsync(stoppingToken);
    }
}
