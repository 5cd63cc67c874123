import {
  GraphQLError,
  Kind,
  validate,
  type ASTVisitor,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { maxDirectivesRule } from '@escape.tech/graphql-armor-max-directives';
import { maxTokensPlugin } from '@escape.tech/graphql-armor-max-tokens';
import { createComplexityRule } from '@pothos/plugin-complexity';

/**
 * Every operation's cost is bounded before it runs. Document-shape limits (depth, aliases,
 * directives, root fields, tokens) come from GraphQL Armor and are checked while parsing and
 * validating: each walks the document once, fragments memoised, so an operation built to explode
 * (fragments that each spread the next one twice) is measured in linear time and refused. The cost
 * budget is @pothos/plugin-complexity's: each field of the schema declares its cost from its
 * arguments (`candles` and `ticks` by their limit and window, symbol lists by their length), and
 * the check runs with the request's variables just before execution (validation results are
 * cached per document, which a variable-dependent check must not be).
 */
export const OPERATION_LIMITS = {
  /** Nesting of data fields (introspection is bounded by `maxIntrospectionDepth` and the cost budget instead). */
  maxDepth: 8,
  /** GraphiQL's schema query nests ofType chains this deep. */
  maxIntrospectionDepth: 15,
  maxAliases: 15,
  maxRootFields: 16,
  maxDirectives: 20,
  maxTokens: 2_000,
  /** Budget of one operation in cost units: about one unit per row a resolver reads and per value it returns. */
  maxCost: 20_000,
  /**
   * Subscriptions open at once in this process, over SSE and WebSocket together. Each costs a
   * queue and, per change of what it follows, one shared execution per distinct subscription plus
   * one message (a system call per client): `npm run bench -- fanout` measures 1,000 to 10,000
   * priceUpdated clients (README, "Subscriptions at scale"). Each client holds a file descriptor: the
   * process's `ulimit -n` must exceed this and maxWebSocketConnections with room to spare.
   */
  maxSubscriptions: 12_000,
  /** WebSocket connections open at once (each holds a file descriptor, subscribed or not); an upgrade past it gets 503. */
  maxWebSocketConnections: 12_000,
};

export type OperationLimits = { readonly [K in keyof typeof OPERATION_LIMITS]: number };

/** A refused operation: the client's to fix, so BAD_USER_INPUT with the limit named. */
function limitError(limit: string, message: string, extra: Record<string, unknown> = {}): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'BAD_USER_INPUT', limit, ...extra } });
}

/** Armor's visitors throw on rejection; here they report instead, so every refusal is a validation error with our code. */
function armorRule(limit: string, make: (onReject: (ctx: unknown, err: GraphQLError) => void) => ValidationRule): ValidationRule {
  const rule = (context: ValidationContext): ASTVisitor => {
    const onReject = (_ctx: unknown, err: GraphQLError) =>
      context.reportError(limitError(limit, err.message.replace(/^Syntax Error: /, '')));
    return make(onReject)(context);
  };
  Object.defineProperty(rule, 'name', { value: `lakets_${limit}` });
  return rule;
}

function operationFields(
  set: SelectionSetNode,
  fragments: Map<string, FragmentDefinitionNode>,
  seen: Set<string>,
  visit: (name: string) => void,
): void {
  for (const sel of set.selections) {
    if (sel.kind === Kind.FIELD) visit(sel.name.value);
    else if (sel.kind === Kind.INLINE_FRAGMENT) operationFields(sel.selectionSet, fragments, seen, visit);
    else if (!seen.has(sel.name.value)) {
      seen.add(sel.name.value); // a fragment spread twice at the root selects the same fields
      const frag = fragments.get(sel.name.value);
      if (frag) operationFields(frag.selectionSet, fragments, seen, visit);
    }
  }
}

/** At most `max` root fields per operation (each is a separate resolver, often a query of its own). */
export function maxRootFieldsRule(max: number): ValidationRule {
  return function lakets_rootFields(context: ValidationContext): ASTVisitor {
    return {
      OperationDefinition(node) {
        const fragments = new Map<string, FragmentDefinitionNode>();
        for (const def of context.getDocument().definitions) if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
        let count = 0;
        operationFields(node.selectionSet, fragments, new Set(), () => count++);
        if (count > max) context.reportError(limitError('rootFields', `Root fields limit of ${max} exceeded, found ${count}.`));
      },
    };
  };
}

// Introspection's meta fields are not schema fields, so the complexity plugin prices `__schema`
// and `__type` at 1 whatever lies below. Their lists (types, fields, args, …) fan out like any
// other, so they get a multiplier here too (smaller than the default: the schema has a few dozen types, and graphql-js already refuses introspection that cycles through fields and types).
const INTROSPECTION_LISTS = new Set(['types', 'directives', 'fields', 'args', 'inputFields', 'interfaces', 'possibleTypes', 'enumValues']);
const INTROSPECTION_LIST_MULTIPLIER = 5;

export function introspectionCost(document: DocumentNode, operation: OperationDefinitionNode): number {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const def of document.definitions) if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
  const memo = new Map<SelectionSetNode, number>();
  const active = new Set<SelectionSetNode>();
  const costOf = (set: SelectionSetNode): number => {
    const known = memo.get(set);
    if (known !== undefined) return known;
    if (active.has(set)) return 0; // a fragment cycle is refused by validation anyway
    active.add(set);
    let cost = 0;
    for (const sel of set.selections) {
      if (sel.kind === Kind.FIELD) {
        const below = sel.selectionSet ? costOf(sel.selectionSet) : 0;
        cost += 1 + below * (INTROSPECTION_LISTS.has(sel.name.value) ? INTROSPECTION_LIST_MULTIPLIER : 1);
      } else if (sel.kind === Kind.INLINE_FRAGMENT) {
        cost += costOf(sel.selectionSet);
      } else {
        const frag = fragments.get(sel.name.value);
        if (frag) cost += costOf(frag.selectionSet);
      }
    }
    active.delete(set);
    memo.set(set, cost);
    return cost;
  };
  // The root level, through fragments: each spread counts (twice spread, twice the cost), each
  // fragment is priced once (memoised like everything else here).
  const rootMemo = new Map<SelectionSetNode, number>();
  const rootCost = (set: SelectionSetNode): number => {
    const known = rootMemo.get(set);
    if (known !== undefined) return known;
    if (active.has(set)) return 0;
    active.add(set);
    let cost = 0;
    for (const sel of set.selections) {
      if (sel.kind === Kind.FIELD) {
        if ((sel.name.value === '__schema' || sel.name.value === '__type') && sel.selectionSet) cost += costOf(sel.selectionSet);
      } else if (sel.kind === Kind.INLINE_FRAGMENT) {
        cost += rootCost(sel.selectionSet);
      } else {
        const frag = fragments.get(sel.name.value);
        if (frag) cost += rootCost(frag.selectionSet);
      }
    }
    active.delete(set);
    rootMemo.set(set, cost);
    return cost;
  };
  return rootCost(operation.selectionSet);
}

/** The document-shape rules, for yoga's validation phase (static: their results may be cached per document). */
export function shapeRules(limits: OperationLimits = OPERATION_LIMITS): ValidationRule[] {
  return [
    armorRule('depth', (onReject) => maxDepthRule({ n: limits.maxDepth, ignoreIntrospection: true, flattenFragments: true, onReject: [onReject], propagateOnRejection: false })),
    armorRule('introspectionDepth', (onReject) =>
      maxDepthRule({ n: limits.maxIntrospectionDepth, ignoreIntrospection: false, flattenFragments: true, onReject: [onReject], propagateOnRejection: false }),
    ),
    armorRule('aliases', (onReject) => maxAliasesRule({ n: limits.maxAliases, onReject: [onReject], propagateOnRejection: false })),
    armorRule('directives', (onReject) => maxDirectivesRule({ n: limits.maxDirectives, onReject: [onReject], propagateOnRejection: false })),
    maxRootFieldsRule(limits.maxRootFields),
  ];
}

export interface CostCheck {
  cost: number;
  errors: GraphQLError[];
}

/**
 * The cost of the operation that will run, with these variables: the schema's declared field costs
 * (the complexity plugin) plus introspection's fan-out. Errors when over budget.
 */
export function checkCost(
  schema: GraphQLSchema,
  document: DocumentNode,
  variables: Record<string, unknown> | null | undefined,
  operationName: string | null | undefined,
  context: object,
  limits: OperationLimits = OPERATION_LIMITS,
): CostCheck {
  const operation = document.definitions.find(
    (d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION && (!operationName || d.name?.value === operationName),
  );
  if (!operation) return { cost: 0, errors: [] };
  let schemaCost = 0;
  const rule = createComplexityRule({
    context,
    variableValues: variables ?? {},
    operationName: operationName ?? operation.name?.value ?? null,
    validate: (result) => {
      schemaCost = result.complexity;
    },
  });
  // Pricing reads the arguments, so argument values that cannot be read (a bad variable) fail here,
  // as they would a moment later in execution: the client's error either way.
  const asInputError = (e: GraphQLError) => new GraphQLError(e.message, { extensions: { code: 'BAD_USER_INPUT', ...e.extensions } });
  let errors: GraphQLError[];
  try {
    errors = [...validate(schema, document, [rule])];
  } catch (err) {
    if (err instanceof GraphQLError) return { cost: 0, errors: [asInputError(err)] };
    throw err;
  }
  if (errors.length) return { cost: 0, errors: errors.map(asInputError) };
  const cost = schemaCost + introspectionCost(document, operation);
  if (cost > limits.maxCost) {
    return {
      cost,
      errors: [
        limitError('cost', `Operation cost ${cost} exceeds the budget of ${limits.maxCost}; ask for fewer rows (limit, narrower windows, fewer symbols), fewer fields or fewer aliases.`, {
          cost,
          maxCost: limits.maxCost,
        }),
      ],
    };
  }
  return { cost, errors: [] };
}

/** Verdicts kept per document: a few variable sets each, short ones only (a verdict is cheap to recompute, memory is not). */
const COST_VERDICTS_PER_DOCUMENT = 16;
const MAX_MEMOISED_VARIABLES_CHARS = 1_024;

/**
 * checkCost, memoised per parsed document (yoga's parser cache hands the same DocumentNode to every
 * request of the same text) and per operation name and variables: the price of a field depends on
 * its arguments only, so the same operation with the same variables always gets the same verdict.
 * Without it every request walked its document once more, with the complexity rule, before it ran.
 */
export function costChecker(limits: OperationLimits = OPERATION_LIMITS) {
  const verdicts = new WeakMap<DocumentNode, Map<string, CostCheck>>();
  return (schema: GraphQLSchema, document: DocumentNode, variables: Record<string, unknown> | null | undefined, operationName: string | null | undefined, context: object): CostCheck => {
    const vars = variables && Object.keys(variables).length > 0 ? JSON.stringify(variables) : '';
    if (vars.length > MAX_MEMOISED_VARIABLES_CHARS) return checkCost(schema, document, variables, operationName, context, limits);
    const key = `${operationName ?? ''}\u0000${vars}`;
    let byKey = verdicts.get(document);
    const known = byKey?.get(key);
    if (known) return known;
    const check = checkCost(schema, document, variables, operationName, context, limits);
    if (!byKey) verdicts.set(document, (byKey = new Map()));
    if (byKey.size >= COST_VERDICTS_PER_DOCUMENT) byKey.delete(byKey.keys().next().value!);
    byKey.set(key, check);
    return check;
  };
}

/**
 * The yoga/envelop plugin: token limit at parse, shape rules at validation, the cost budget right
 * before execution or subscription (with the request's variables), and a cap on the subscriptions
 * open at once.
 */
export function operationLimitsPlugin(limits: OperationLimits = OPERATION_LIMITS): Plugin {
  const tokens = maxTokensPlugin({ n: limits.maxTokens, propagateOnRejection: true }) as Plugin;
  const rules = shapeRules(limits);
  const cost = costChecker(limits);
  let openSubscriptions = 0;
  return {
    onParse(payload) {
      tokens.onParse!(payload); // installs armor's counting parser
      // Armor rejects with its own "Syntax Error: Token limit…"; the client gets our code instead.
      return ({ result, replaceParseResult }) => {
        if (result instanceof GraphQLError && result.message.includes('Token limit')) {
          replaceParseResult(limitError('tokens', result.message.replace(/^Syntax Error: /, '')));
        }
      };
    },
    onValidate({ addValidationRule }) {
      for (const rule of rules) addValidationRule(rule);
    },
    onExecute({ args, setResultAndStopExecution }) {
      const check = cost(args.schema, args.document, args.variableValues, args.operationName, args.contextValue as object);
      if (check.errors.length) setResultAndStopExecution({ errors: check.errors });
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const check = cost(args.schema, args.document, args.variableValues, args.operationName, args.contextValue as object);
      if (check.errors.length) return setResultAndStopExecution({ errors: check.errors });
      if (openSubscriptions >= limits.maxSubscriptions) {
        return setResultAndStopExecution({
          errors: [
            new GraphQLError(`the server has ${limits.maxSubscriptions} subscriptions open, its limit; retry later`, {
              extensions: { code: 'SERVICE_UNAVAILABLE', limit: 'subscriptions' },
            }),
          ],
        });
      }
      return {
        onSubscribeResult({ result }) {
          if (!isAsyncIterable(result)) return;
          openSubscriptions++;
          return { onEnd: () => void openSubscriptions-- };
        },
      };
    },
  };
}
